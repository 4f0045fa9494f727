//! What the run counts and how it is shown: the live line, the summary, the JSON.
//!
//! Latencies go into HDR histograms (Gil Tene's HdrHistogram): a fixed array of
//! log-spaced buckets with 3 significant digits, so recording is an index
//! computation and an increment (no allocation, no sorting) and percentiles up to
//! p99.9 and the max come out right however many millions of messages were seen.
//! Averages are left out on purpose: a latency average hides exactly the slow
//! tail a stress test is looking for.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::run::{Config, Stop};

/// The longest latency the histograms resolve: an hour, far beyond any timeout
/// here; longer values are recorded as an hour instead of being lost.
const HISTOGRAM_MAX_US: u64 = 3_600_000_000;

/// Significant digits kept by the histograms: 3 means a value is off by at most
/// 0.1 %, in about 200 KiB per histogram.
const HISTOGRAM_DIGITS: u8 = 3;

/// Error messages kept word for word (the rest are only counted). 20 is enough to
/// see a pattern (one connection, or all of them at the same offset?) without
/// burying the summary when 10000 connections all fail the same way.
pub const MAX_ERRORS_KEPT: usize = 20;

/// A new microsecond histogram.
fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low,
    // digits <= 5); a failure here is a programming error, caught by every test run.
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, HISTOGRAM_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// Whole microseconds, rounding down (the clock batching makes finer digits noise).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The error messages of the run: the first [`MAX_ERRORS_KEPT`] word for word,
/// the rest counted.
#[derive(Debug, Default)]
pub struct Errors {
    kept: Vec<String>,
    total: u64,
}

impl Errors {
    /// Record one error. The first few are also logged as they happen, so a
    /// long run shows trouble at once instead of only in the summary.
    pub fn push(&mut self, message: String) {
        self.total += 1;
        if self.kept.len() < MAX_ERRORS_KEPT {
            log::warn!("{message}");
            self.kept.push(message);
        } else if self.total == MAX_ERRORS_KEPT as u64 + 1 {
            log::warn!("more errors: from now on they are only counted");
        }
    }

    /// How many errors there were in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The ones kept word for word.
    pub fn kept(&self) -> &[String] {
        &self.kept
    }
}

/// Everything counted during the run.
pub struct Stats {
    /// Per-message latency in µs: from handing the message's first byte to the
    /// kernel to noticing its last echoed byte.
    latency: Histogram<u64>,
    /// Connect latency in µs: from `connect()` to the socket reporting it is connected.
    connect_latency: Histogram<u64>,
    /// Message latencies of the current second only, for the live line.
    window_latency: Histogram<u64>,
    /// Messages whose whole echo arrived and was verified.
    pub messages: u64,
    /// Bytes handed to the kernel by `write()`.
    pub bytes_sent: u64,
    /// Echoed bytes read and verified.
    pub bytes_received: u64,
    /// Messages still in flight when the run gave them up (not an error).
    pub abandoned: u64,
    /// Connections that connected and ended without an error.
    pub connections_ok: u64,
    /// Connections that could not connect, or hit an error later.
    pub connections_failed: u64,
    /// Connections the run stopped before they connected (never opened, or still
    /// connecting at the deadline).
    pub connections_unfinished: u64,
    /// Connections connected and open right now.
    pub open: u64,
    /// Connections whose connect is in progress right now.
    pub connecting: u64,
    /// The errors.
    pub errors: Errors,
    /// Counters at the last live line, to print per-second rates.
    window_start: (Instant, u64, u64, u64),
}

impl Stats {
    /// Empty counters, with `now` as the start of the first live-line second.
    pub fn new(now: Instant) -> Stats {
        Stats {
            latency: histogram(),
            connect_latency: histogram(),
            window_latency: histogram(),
            messages: 0,
            bytes_sent: 0,
            bytes_received: 0,
            abandoned: 0,
            connections_ok: 0,
            connections_failed: 0,
            connections_unfinished: 0,
            open: 0,
            connecting: 0,
            errors: Errors::default(),
            window_start: (now, 0, 0, 0),
        }
    }

    /// One message's echo is complete and verified.
    #[inline]
    pub fn record_message(&mut self, latency: Duration) {
        let us = micros(latency);
        self.messages += 1;
        self.latency.saturating_record(us);
        self.window_latency.saturating_record(us);
    }

    /// One connection has connected.
    pub fn record_connect(&mut self, latency: Duration) {
        self.connect_latency.saturating_record(micros(latency));
    }

    /// The line printed every second: the rates since the previous one.
    pub fn live_line(&mut self, now: Instant, since_start: Duration) -> String {
        let (then, messages, sent, received) = self.window_start;
        let secs = now.saturating_duration_since(then).as_secs_f64().max(1e-9);
        let mut line = format!(
            "[{:5.1}s] open {:>6}{}  {:>9.0} msg/s  MB/s out {:>8.1} in {:>8.1}  p99 {}",
            since_start.as_secs_f64(),
            self.open,
            if self.connecting > 0 {
                format!(" (+{} connecting)", self.connecting)
            } else {
                String::new()
            },
            (self.messages - messages) as f64 / secs,
            (self.bytes_sent - sent) as f64 / secs / 1e6,
            (self.bytes_received - received) as f64 / secs / 1e6,
            if self.window_latency.is_empty() {
                "-".to_string()
            } else {
                human_us(self.window_latency.value_at_quantile(0.99))
            },
        );
        if self.errors.total() > 0 {
            let _ = write!(line, "  errors {}", self.errors.total());
        }
        self.window_latency.reset();
        self.window_start = (now, self.messages, self.bytes_sent, self.bytes_received);
        line
    }
}

/// `812 µs`, `3.41 ms`, `1.20 s`.
fn human_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

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
        self.stats.errors.total() == 0 && self.stats.connections_failed == 0
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
        let c = self.config;
        let s = self.stats;
        let mut t = String::new();
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
        let _ = writeln!(
            t,
            "sent:        {} = {:.3} Gbit/s",
            human_bytes(s.bytes_sent),
            self.gbit(s.bytes_sent)
        );
        let _ = writeln!(
            t,
            "received:    {} = {:.3} Gbit/s (every byte checked)",
            human_bytes(s.bytes_received),
            self.gbit(s.bytes_received)
        );
        if s.latency.is_empty() {
            let _ = writeln!(t, "latency:     no message completed");
        } else {
            let h = &s.latency;
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
        if !s.connect_latency.is_empty() {
            let h = &s.connect_latency;
            let _ = writeln!(
                t,
                "connect:     p50 {}  p99 {}  max {}",
                human_us(h.value_at_quantile(0.50)),
                human_us(h.value_at_quantile(0.99)),
                human_us(h.max())
            );
        }
        for note in self.notes {
            let _ = writeln!(t, "note:        {note}");
        }
        if s.errors.total() == 0 {
            let _ = writeln!(t, "errors:      none");
        } else {
            let _ = writeln!(t, "errors:      {}", s.errors.total());
            for e in s.errors.kept() {
                let _ = writeln!(t, "  {e}");
            }
            let more = s.errors.total() - s.errors.kept().len() as u64;
            if more > 0 {
                let _ = writeln!(t, "  ... and {more} more");
            }
        }
        let _ = write!(t, "result:      {}", if self.ok() { "OK" } else { "FAILED" });
        t
    }

    /// The summary as one JSON object on one line, for scripts. Written by hand:
    /// the shape is flat and fixed, and only strings need escaping.
    pub fn json(&self) -> String {
        let c = self.config;
        let s = self.stats;
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
        let h = &s.latency;
        let _ = write!(
            j,
            ",\"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}}",
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.90),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
        let h = &s.connect_latency;
        let _ = write!(
            j,
            ",\"connect_latency_us\":{{\"p50\":{},\"p99\":{},\"max\":{}}}",
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.99),
            h.max()
        );
        let _ = write!(j, ",\"error_count\":{},\"errors\":[", s.errors.total());
        for (i, e) in s.errors.kept().iter().enumerate() {
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
    fn errors_keep_the_first_ones_and_count_all() {
        let mut e = Errors::default();
        for i in 0..(MAX_ERRORS_KEPT + 5) {
            e.push(format!("error {i}"));
        }
        assert_eq!(e.total(), MAX_ERRORS_KEPT as u64 + 5);
        assert_eq!(e.kept().len(), MAX_ERRORS_KEPT);
        assert_eq!(e.kept()[0], "error 0");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_us(812), "812 µs");
        assert_eq!(human_us(3_410), "3.41 ms");
        assert_eq!(human_us(1_200_000), "1.20 s");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
    }
}
