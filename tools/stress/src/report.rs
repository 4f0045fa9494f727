//! How a run is shown: the summary for people and the JSON for scripts, both
//! made from one [`Summary`]. `merge` reads such summaries back from several
//! runs' `--json`, adds them up into one [`Summary`] and shows it the same way.
//!
//! The JSON carries each latency histogram whole (HdrHistogram's V2 + DEFLATE
//! format in base64, the string HdrHistogram's own logs and tools use), because
//! percentiles cannot be added: the p99 of two runs is not the average of their
//! p99s, but it is the p99 of their two histograms added together.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::config::{Config, Stop};
use crate::stats::{Stats, Timeline};
use progjar::units;

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
        is_ok(self.stats.errors().total(), self.stats.counts().connections_failed)
    }

    /// The summary for people (stdout).
    pub fn text(&self) -> String {
        self.summary().text()
    }

    /// The summary as one JSON object on one line, for scripts and `merge`.
    pub fn json(&self) -> String {
        self.summary().json()
    }

    /// The run as a [`Summary`].
    pub fn summary(&self) -> Summary {
        let c = self.config;
        let s = self.stats.counts();
        let (duration_secs, messages_per_connection) = match c.stop {
            Stop::After(d) => (Some(d.as_secs_f64()), c.per_connection),
            Stop::Messages(n) => (None, Some(n)),
        };
        // Made right after the run ended: the wall clock places the run in time,
        // so `merge` can tell runs that overlapped from runs one after the other.
        let ended_unix =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let mut summary = Summary {
            runs: 1,
            target: c.target,
            connections: u64::from(c.connections),
            idle: u64::from(c.idle),
            message_size: c.message_size,
            pipeline: c.pipeline,
            duration_secs,
            messages_per_connection,
            seconds: self.seconds,
            ended_unix,
            connections_ok: s.connections_ok,
            connections_failed: s.connections_failed,
            connections_unfinished: s.connections_unfinished,
            messages: s.messages,
            messages_abandoned: s.abandoned,
            messages_late: s.late,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            messages_per_sec: 0.0,
            connections_per_sec: 0.0,
            gbit_per_sec_sent: 0.0,
            gbit_per_sec_received: 0.0,
            latency_us: Latency::of(self.stats.latency(), true),
            connect_latency_us: Latency::of(self.stats.connect_latency(), false),
            error_count: self.stats.errors().total(),
            errors: self.stats.errors().kept().to_vec(),
            notes: self.notes.to_vec(),
            ok: false,
            timeline: self.stats.timeline().clone(),
        };
        summary.derive();
        summary
    }
}

/// A run's (or several merged runs') results: what `--json` prints, field for
/// field, and what the text summary is written from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// How many runs this summary adds up: 1 for a run, more after `merge`.
    pub runs: u64,
    pub target: SocketAddr,
    pub connections: u64,
    pub idle: u64,
    pub message_size: usize,
    pub pipeline: u32,
    pub duration_secs: Option<f64>,
    pub messages_per_connection: Option<u64>,
    /// The time the rates are computed over; for merged runs, the union of
    /// their intervals (runs side by side count once, runs one after another add up).
    pub seconds: f64,
    /// When the (last) run ended, in seconds since 1970 by this machine's clock.
    pub ended_unix: f64,
    pub connections_ok: u64,
    pub connections_failed: u64,
    pub connections_unfinished: u64,
    pub messages: u64,
    pub messages_abandoned: u64,
    pub messages_late: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub messages_per_sec: f64,
    pub connections_per_sec: f64,
    pub gbit_per_sec_sent: f64,
    pub gbit_per_sec_received: f64,
    pub latency_us: Latency,
    pub connect_latency_us: Latency,
    pub error_count: u64,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
    pub ok: bool,
    /// The run second by second, and its phases (`stats::Timeline`); after
    /// `merge`, the runs' seconds on one clock, added up.
    #[serde(default)]
    pub timeline: Timeline,
}

/// A run (or merged runs) passed: every byte came back right, every connection worked.
fn is_ok(error_count: u64, connections_failed: u64) -> bool {
    error_count == 0 && connections_failed == 0
}

/// Latency percentiles in µs, and the histogram they come from; connect
/// latencies leave out p90 and p99.9.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    /// How many latencies the histogram holds.
    pub count: u64,
    pub p50: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90: Option<u64>,
    pub p99: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999: Option<u64>,
    pub max: u64,
    /// The whole histogram: HdrHistogram V2 + DEFLATE, base64 (`HISTF...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<String>,
}

impl Latency {
    /// The percentiles of `h` (p90 and p99.9 too when `detailed`), and `h` itself.
    pub fn of(h: &Histogram<u64>, detailed: bool) -> Latency {
        let mut bytes = Vec::new();
        // Writing to a Vec cannot fail, and neither can the counts here (they
        // would have to pass i64::MAX); should it fail, the JSON just has no
        // histogram and `merge` says so.
        let histogram = V2DeflateSerializer::new()
            .serialize(h, &mut bytes)
            .ok()
            .map(|_| base64::engine::general_purpose::STANDARD.encode(&bytes));
        Latency {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: detailed.then(|| h.value_at_quantile(0.90)),
            p99: h.value_at_quantile(0.99),
            p999: detailed.then(|| h.value_at_quantile(0.999)),
            max: h.max(),
            histogram,
        }
    }

    /// The histogram back from its text, or why not.
    pub fn decode(&self) -> Result<Histogram<u64>, String> {
        let text = self.histogram.as_deref().ok_or("it has no histogram")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("its histogram is not base64: {e}"))?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("its histogram cannot be read: {e:?}"))
    }
}

impl Summary {
    /// Fill in what follows from the counts: the rates and `ok`.
    pub fn derive(&mut self) {
        let seconds = self.seconds;
        let rate = |count: u64| if seconds > 0.0 { count as f64 / seconds } else { 0.0 };
        self.messages_per_sec = rate(self.messages);
        self.connections_per_sec = rate(self.connections_ok);
        self.gbit_per_sec_sent = rate(self.bytes_sent) * 8.0 / 1e9;
        self.gbit_per_sec_received = rate(self.bytes_received) * 8.0 / 1e9;
        self.ok = is_ok(self.error_count, self.connections_failed);
    }

    /// The summary as one JSON object on one line.
    pub fn json(&self) -> String {
        // Numbers, strings and lists only: serializing cannot fail.
        serde_json::to_string(self).expect("the summary serializes")
    }

    /// The summary for people.
    pub fn text(&self) -> String {
        let mut t = String::new();
        self.write_totals(&mut t);
        self.write_latencies(&mut t);
        self.write_problems(&mut t);
        let _ = write!(t, "result:      {}", if self.ok { "OK" } else { "FAILED" });
        t
    }

    /// What was asked, and what was counted.
    fn write_totals(&self, t: &mut String) {
        let mode = match (self.duration_secs, self.messages_per_connection) {
            (Some(d), None) => format!("for {d:.1} s"),
            (Some(d), Some(n)) => {
                format!("for {d:.1} s, a new connection after every {n} messages")
            }
            (None, n) => format!("{} messages each", n.unwrap_or(0)),
        };
        if self.runs > 1 {
            let _ = writeln!(
                t,
                "merged:      {} runs; counts added, latencies of all their messages together, \
                 time the union of the runs' intervals",
                self.runs
            );
        }
        let _ = writeln!(
            t,
            "target:      {} ({} connections + {} idle, {}-byte messages, pipeline {}, {mode})",
            self.target, self.connections, self.idle, self.message_size, self.pipeline
        );
        let _ = writeln!(
            t,
            "connections: {} ok, {} failed, {} unfinished",
            self.connections_ok, self.connections_failed, self.connections_unfinished
        );
        let late = self.messages_late;
        let _ = writeln!(
            t,
            "messages:    {} verified in {:.2} s = {:.0} msg/s ({} in flight abandoned at the end{})",
            self.messages,
            self.seconds,
            self.messages_per_sec,
            self.messages_abandoned,
            if late > 0 { format!(", {late} late") } else { String::new() }
        );
        if self.duration_secs.is_some() && self.messages_per_connection.is_some() {
            let _ = writeln!(
                t,
                "connects:    {:.0} connections/s (connect, messages, close, as netperf's TCP_CRR)",
                self.connections_per_sec
            );
        }
        let (sent, received) = (self.bytes_sent, self.bytes_received);
        let _ = writeln!(
            t,
            "sent:        {} = {:.3} Gbit/s",
            units::bytes(sent),
            self.gbit_per_sec_sent
        );
        let _ = writeln!(
            t,
            "received:    {} = {:.3} Gbit/s (every byte checked)",
            units::bytes(received),
            self.gbit_per_sec_received
        );
    }

    /// The message and connect latency percentiles.
    fn write_latencies(&self, t: &mut String) {
        let l = &self.latency_us;
        if l.count == 0 {
            let _ = writeln!(t, "latency:     no message completed");
        } else {
            let _ = writeln!(
                t,
                "latency:     p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                units::micros(l.p50),
                units::micros(l.p90.unwrap_or(0)),
                units::micros(l.p99),
                units::micros(l.p999.unwrap_or(0)),
                units::micros(l.max)
            );
        }
        let l = &self.connect_latency_us;
        if l.count > 0 {
            let _ = writeln!(
                t,
                "connect:     p50 {}  p99 {}  max {}",
                units::micros(l.p50),
                units::micros(l.p99),
                units::micros(l.max)
            );
        }
    }

    /// The notes, then the errors kept word for word.
    fn write_problems(&self, t: &mut String) {
        for note in &self.notes {
            let _ = writeln!(t, "note:        {note}");
        }
        if self.error_count == 0 {
            let _ = writeln!(t, "errors:      none");
            return;
        }
        let _ = writeln!(t, "errors:      {}", self.error_count);
        for e in &self.errors {
            let _ = writeln!(t, "  {e}");
        }
        let more = self.error_count.saturating_sub(self.errors.len() as u64);
        if more > 0 {
            let _ = writeln!(t, "  ... and {more} more");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_comes_back_from_its_text_unchanged() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
        for v in [3, 40, 41, 500, 70_000, 3_000_000] {
            h.record_n(v, v % 7 + 1).expect("record");
        }
        let latency = Latency::of(&h, true);
        assert!(latency.histogram.as_deref().is_some_and(|s| s.starts_with("HISTF")));
        assert_eq!(latency.decode().expect("decodes"), h);
    }
}
