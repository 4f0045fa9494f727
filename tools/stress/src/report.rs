//! How the finished run is shown: the summary for people and the JSON for scripts.

use std::fmt::Write as _;

use crate::config::{Config, Stop};
use crate::stats::{human_us, Stats};

/// `1234567` bytes as `1.23 MB` (decimal units, like the Gbit/s beside them).
fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b < 1e3 {
        format!("{b} B")
    } else if b < 1e6 {
        format!("{:.1} kB", b / 1e3)
    } else if b < 1e9 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.2} GB", b / 1e9)
    }
}

/// The finished run: its settings, how long it measured, and its counters.
pub struct Report<'a> {
    /// What was asked.
    pub config: &'a Config,
    /// The time the rates are computed over: from the first active connection's
    /// `connect()` to the end of the run (the idle connections' ramp is left out).
    pub seconds: f64,
    /// The counters.
    pub stats: &'a Stats,
    /// Notes that are not errors (e.g. connections not opened before the deadline).
    pub notes: &'a [String],
}

impl Report<'_> {
    /// True when every byte came back right and every connection worked.
    pub fn ok(&self) -> bool {
        self.stats.errors().total() == 0 && self.stats.counts().connections_failed == 0
    }

    fn rate(&self, count: u64) -> f64 {
        if self.seconds > 0.0 {
            count as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn gbit(&self, bytes: u64) -> f64 {
        self.rate(bytes) * 8.0 / 1e9
    }

    /// The summary for people (stdout).
    pub fn text(&self) -> String {
        let mut t = String::new();
        self.write_totals(&mut t);
        self.write_latencies(&mut t);
        self.write_problems(&mut t);
        let _ = write!(t, "result:      {}", if self.ok() { "OK" } else { "FAILED" });
        t
    }

    /// What was asked, and what was counted.
    fn write_totals(&self, t: &mut String) {
        let c = self.config;
        let s = self.stats.counts();
        let mode = match c.stop {
            Stop::After(d) => format!("for {:.1} s", d.as_secs_f64()),
            Stop::Messages(n) => format!("{n} messages each"),
        };
        let _ = writeln!(
            t,
            "target:      {} ({} connections + {} idle, {}-byte messages, pipeline {}, {mode})",
            c.target, c.connections, c.idle, c.message_size, c.pipeline
        );
        let _ = writeln!(
            t,
            "connections: {} ok, {} failed, {} unfinished",
            s.connections_ok, s.connections_failed, s.connections_unfinished
        );
        let _ = writeln!(
            t,
            "messages:    {} verified in {:.2} s = {:.0} msg/s ({} in flight abandoned at the end)",
            s.messages,
            self.seconds,
            self.rate(s.messages),
            s.abandoned
        );
        let (sent, received) = (s.bytes_sent, s.bytes_received);
        let _ = writeln!(t, "sent:        {} = {:.3} Gbit/s", human_bytes(sent), self.gbit(sent));
        let _ = writeln!(
            t,
            "received:    {} = {:.3} Gbit/s (every byte checked)",
            human_bytes(received),
            self.gbit(received)
        );
    }

    /// The message and connect latency percentiles.
    fn write_latencies(&self, t: &mut String) {
        let h = self.stats.latency();
        if h.is_empty() {
            let _ = writeln!(t, "latency:     no message completed");
        } else {
            let _ = writeln!(
                t,
                "latency:     p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                human_us(h.value_at_quantile(0.50)),
                human_us(h.value_at_quantile(0.90)),
                human_us(h.value_at_quantile(0.99)),
                human_us(h.value_at_quantile(0.999)),
                human_us(h.max())
            );
        }
        let h = self.stats.connect_latency();
        if !h.is_empty() {
            let _ = writeln!(
                t,
                "connect:     p50 {}  p99 {}  max {}",
                human_us(h.value_at_quantile(0.50)),
                human_us(h.value_at_quantile(0.99)),
                human_us(h.max())
            );
        }
    }

    /// The notes, then the errors kept word for word.
    fn write_problems(&self, t: &mut String) {
        for note in self.notes {
            let _ = writeln!(t, "note:        {note}");
        }
        let errors = self.stats.errors();
        if errors.total() == 0 {
            let _ = writeln!(t, "errors:      none");
            return;
        }
        let _ = writeln!(t, "errors:      {}", errors.total());
        for e in errors.kept() {
            let _ = writeln!(t, "  {e}");
        }
        let more = errors.total() - errors.kept().len() as u64;
        if more > 0 {
            let _ = writeln!(t, "  ... and {more} more");
        }
    }

    /// The summary as one JSON object on one line, for scripts. Written by hand:
    /// the shape is flat and fixed, and only strings need escaping.
    pub fn json(&self) -> String {
        let c = self.config;
        let s = self.stats.counts();
        let errors = self.stats.errors();
        let mut j = String::from("{");
        let _ = write!(j, "\"target\":{}", json_string(&c.target.to_string()));
        let _ = write!(j, ",\"connections\":{},\"idle\":{}", c.connections, c.idle);
        let _ = write!(j, ",\"message_size\":{},\"pipeline\":{}", c.message_size, c.pipeline);
        match c.stop {
            Stop::After(d) => {
                let _ = write!(
                    j,
                    ",\"duration_secs\":{},\"messages_per_connection\":null",
                    json_f64(d.as_secs_f64())
                );
            }
            Stop::Messages(n) => {
                let _ = write!(j, ",\"duration_secs\":null,\"messages_per_connection\":{n}");
            }
        }
        let _ = write!(j, ",\"seconds\":{}", json_f64(self.seconds));
        let _ = write!(
            j,
            ",\"connections_ok\":{},\"connections_failed\":{},\"connections_unfinished\":{}",
            s.connections_ok, s.connections_failed, s.connections_unfinished
        );
        let _ = write!(j, ",\"messages\":{},\"messages_abandoned\":{}", s.messages, s.abandoned);
        let _ =
            write!(j, ",\"bytes_sent\":{},\"bytes_received\":{}", s.bytes_sent, s.bytes_received);
        let _ = write!(j, ",\"messages_per_sec\":{}", json_f64(self.rate(s.messages)));
        let _ = write!(
            j,
            ",\"gbit_per_sec_sent\":{},\"gbit_per_sec_received\":{}",
            json_f64(self.gbit(s.bytes_sent)),
            json_f64(self.gbit(s.bytes_received))
        );
        let h = self.stats.latency();
        let _ = write!(
            j,
            ",\"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}}",
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.90),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
        let h = self.stats.connect_latency();
        let _ = write!(
            j,
            ",\"connect_latency_us\":{{\"p50\":{},\"p99\":{},\"max\":{}}}",
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.99),
            h.max()
        );
        let _ = write!(j, ",\"error_count\":{},\"errors\":[", errors.total());
        for (i, e) in errors.kept().iter().enumerate() {
            if i > 0 {
                j.push(',');
            }
            j.push_str(&json_string(e));
        }
        j.push(']');
        j.push_str(",\"notes\":[");
        for (i, n) in self.notes.iter().enumerate() {
            if i > 0 {
                j.push(',');
            }
            j.push_str(&json_string(n));
        }
        j.push(']');
        let _ = write!(j, ",\"ok\":{}}}", self.ok());
        j
    }
}

/// A finite number as JSON (JSON has no NaN or infinity; they become 0).
fn json_f64(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        "0".to_string()
    }
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
        assert_eq!(json_string("µs"), "\"µs\"");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
    }
}
