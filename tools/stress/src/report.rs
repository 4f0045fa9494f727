//! How the finished run is shown: the summary for people and the JSON for scripts.

use std::fmt::Write as _;
use std::net::SocketAddr;

use serde::Serialize;

use crate::config::{Config, Stop};
use crate::stats::{human_us, Stats, Timeline};

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
        let mode = match (c.stop, c.per_connection) {
            (Stop::After(d), None) => format!("for {:.1} s", d.as_secs_f64()),
            (Stop::After(d), Some(n)) => {
                format!("for {:.1} s, a new connection after every {n} messages", d.as_secs_f64())
            }
            (Stop::Messages(n), _) => format!("{n} messages each"),
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
            "messages:    {} verified in {:.2} s = {:.0} msg/s ({} in flight abandoned at the end{})",
            s.messages,
            self.seconds,
            self.rate(s.messages),
            s.abandoned,
            if s.late > 0 { format!(", {} late", s.late) } else { String::new() }
        );
        if c.per_connection.is_some() {
            let _ = writeln!(
                t,
                "connects:    {:.0} connections/s (connect, messages, close, as netperf's TCP_CRR)",
                self.rate(s.connections_ok)
            );
        }
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

    /// The summary as one JSON object on one line, for scripts.
    pub fn json(&self) -> String {
        let c = self.config;
        let s = self.stats.counts();
        let (duration_secs, messages_per_connection) = match c.stop {
            Stop::After(d) => (Some(d.as_secs_f64()), c.per_connection),
            Stop::Messages(n) => (None, Some(n)),
        };
        let (h, ch) = (self.stats.latency(), self.stats.connect_latency());
        let json = Json {
            target: c.target,
            connections: c.connections,
            idle: c.idle,
            message_size: c.message_size,
            pipeline: c.pipeline,
            duration_secs,
            messages_per_connection,
            seconds: self.seconds,
            connections_ok: s.connections_ok,
            connections_failed: s.connections_failed,
            connections_unfinished: s.connections_unfinished,
            messages: s.messages,
            messages_abandoned: s.abandoned,
            messages_late: s.late,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            messages_per_sec: self.rate(s.messages),
            connections_per_sec: self.rate(s.connections_ok),
            gbit_per_sec_sent: self.gbit(s.bytes_sent),
            gbit_per_sec_received: self.gbit(s.bytes_received),
            latency_us: Latency {
                p50: h.value_at_quantile(0.50),
                p90: Some(h.value_at_quantile(0.90)),
                p99: h.value_at_quantile(0.99),
                p999: Some(h.value_at_quantile(0.999)),
                max: h.max(),
            },
            connect_latency_us: Latency {
                p50: ch.value_at_quantile(0.50),
                p90: None,
                p99: ch.value_at_quantile(0.99),
                p999: None,
                max: ch.max(),
            },
            error_count: self.stats.errors().total(),
            errors: self.stats.errors().kept(),
            notes: self.notes,
            ok: self.ok(),
            timeline: self.stats.timeline(),
        };
        // Numbers, strings and lists only: serializing cannot fail.
        serde_json::to_string(&json).expect("the summary serializes")
    }
}

/// The `--json` summary: its field names are the documented keys, in order.
#[derive(Serialize)]
struct Json<'a> {
    target: SocketAddr,
    connections: u32,
    idle: u32,
    message_size: usize,
    pipeline: u32,
    duration_secs: Option<f64>,
    messages_per_connection: Option<u64>,
    seconds: f64,
    connections_ok: u64,
    connections_failed: u64,
    connections_unfinished: u64,
    messages: u64,
    messages_abandoned: u64,
    messages_late: u64,
    bytes_sent: u64,
    bytes_received: u64,
    messages_per_sec: f64,
    connections_per_sec: f64,
    gbit_per_sec_sent: f64,
    gbit_per_sec_received: f64,
    latency_us: Latency,
    connect_latency_us: Latency,
    error_count: u64,
    errors: &'a [String],
    notes: &'a [String],
    ok: bool,
    /// The run second by second, and its phases (`stats::Timeline`).
    timeline: &'a Timeline,
}

/// Latency percentiles in µs; connect latencies leave out p90 and p99.9.
#[derive(Serialize)]
struct Latency {
    p50: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    p90: Option<u64>,
    p99: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    p999: Option<u64>,
    max: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
    }
}
