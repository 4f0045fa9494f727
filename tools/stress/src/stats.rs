//! What the run counts: connections by state and by how they ended, bytes,
//! messages, latencies and errors, plus the live line printed every second.
//!
//! Every counter changes only through a method here (`connect_started`,
//! `connected`, `closed`, ...), so "how many are open" has one definition
//! instead of `+= 1` and `-= 1` spread over the loop, the opener and the
//! connections.
//!
//! Latencies go into HDR histograms (Gil Tene's HdrHistogram): a fixed array of
//! log-spaced buckets with 3 significant digits, so recording is an index
//! computation and an increment (no allocation, no sorting) and percentiles up to
//! p99.9 and the max come out right however many millions of messages were seen.
//! Averages are left out on purpose: a latency average hides exactly the slow
//! tail a stress test is looking for.
//!
//! The [`Timeline`] (one [`Second`] per live line, and the moments the phases
//! change) is what `--report` draws over time. It is filled at the once-a-second
//! tick from the same window the live line reads, so it adds nothing per message.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use progjar::units;
use serde::{Deserialize, Serialize};

use crate::histogram;

/// Kinds of error kept word for word (the errors of other kinds are only
/// counted). 20 is enough to see a pattern (one connection, or all of them at
/// the same offset?) without burying the summary when 10000 connections all
/// fail in different ways.
pub const MAX_ERRORS_KEPT: usize = 20;

/// Connections named in an [`ErrorGroup`]: enough to tell "connection 0" from
/// "every one of them", in one short line.
const CONNECTIONS_NAMED: usize = 3;

/// Seconds kept in the [`Timeline`]: a day of points (about 9 MB); a longer run
/// stops adding points there, so memory stays bounded however long it runs.
pub const MAX_SECONDS_KEPT: usize = 86_400;

/// A connect slower than this had its SYN dropped and sent again (Linux
/// resends it after 1, 3 and 7 s): worth a note.
const SLOW_CONNECT: Duration = Duration::from_secs(1);

/// Whole microseconds, rounding down (the clock batching makes finer digits noise).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One kind of error: its words (without the connection), how often it
/// happened, and the first connections it happened on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorGroup {
    /// What went wrong, e.g. `connect failed: ECONNREFUSED: ...`.
    pub message: String,
    /// How many times.
    pub count: u64,
    /// The first few connections it happened on, by number.
    pub connections: Vec<u32>,
    /// For merged runs: the file it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl std::fmt::Display for ErrorGroup {
    /// `connection 7: MESSAGE` once, `50 × MESSAGE (first on connections 0, 1, 2)` more often.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        let ids: Vec<String> = self.connections.iter().map(|c| c.to_string()).collect();
        match (self.count, ids.as_slice()) {
            (1, [id]) => write!(f, "connection {id}: {}", self.message),
            (n, _) => {
                // Connections are named once each, so a count past them means
                // more connections, or one of them more than once.
                let first = if n > ids.len() as u64 { "first on " } else { "" };
                let noun = if ids.len() == 1 { "connection" } else { "connections" };
                let (n, list) = (units::grouped(n), ids.join(", "));
                write!(f, "{n} × {} ({first}{noun} {list})", self.message)
            }
        }
    }
}

/// How many of `total` errors are of kinds not `listed` word for word.
pub fn unlisted(listed: &[ErrorGroup], total: u64) -> u64 {
    let counted = listed.iter().fold(0u64, |sum, e| sum.saturating_add(e.count));
    total.saturating_sub(counted)
}

/// The errors of the run, each kind once with its count: the first
/// [`MAX_ERRORS_KEPT`] kinds word for word, the rest counted.
#[derive(Debug, Default)]
pub struct Errors {
    kept: Vec<ErrorGroup>,
    total: u64,
}

impl Errors {
    /// Record one error on connection `conn`. Nothing is printed now: the live
    /// line counts them as they come, and the summary says each kind once.
    pub fn push(&mut self, conn: u32, message: String) {
        self.total += 1;
        if let Some(group) = self.kept.iter_mut().find(|g| g.message == message) {
            group.count += 1;
            if group.connections.len() < CONNECTIONS_NAMED && !group.connections.contains(&conn) {
                group.connections.push(conn);
            }
        } else if self.kept.len() < MAX_ERRORS_KEPT {
            self.kept.push(ErrorGroup { message, count: 1, connections: vec![conn], file: None });
        }
    }

    /// How many errors there were in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The kinds kept word for word, with their counts.
    pub fn kept(&self) -> &[ErrorGroup] {
        &self.kept
    }
}

/// How a connection ended, for the counters.
pub enum End {
    /// Connected and no error.
    Ok,
    /// Could not connect, or an error later: the connection's number and what
    /// went wrong.
    Failed(u32, String),
    /// The run ended before it connected; `asked` when it was one of the
    /// connections asked for, not a `--per-connection` replacement.
    Unfinished { asked: bool },
}

/// The plain counters, read by the report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Messages whose whole echo arrived and was verified.
    pub messages: u64,
    /// Bytes handed to the kernel by `write()`.
    pub bytes_sent: u64,
    /// Echoed bytes read and verified.
    pub bytes_received: u64,
    /// Messages still in flight when the run gave them up (not an error).
    pub abandoned: u64,
    /// Messages whose echo came back complete but after `--echo-timeout`.
    pub late: u64,
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
    /// The most connections that were open at once.
    pub peak_open: u64,
    /// Connections asked for (`-c` and `--idle`, not replacements) that the
    /// run ended before they connected: never started, or still connecting.
    pub never_connected: u64,
    /// Connects that took over a second: their SYN was dropped and resent.
    pub slow_connects: u64,
}

/// One window of the run, normally a second: what the live line printed, as numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// The window's end, in seconds since the run started.
    pub at: f64,
    /// The window's length in seconds (1 but for the last, and a late tick).
    pub secs: f64,
    /// Messages verified in the window.
    pub messages: u64,
    /// Bytes handed to the kernel in the window.
    pub bytes_sent: u64,
    /// Echoed bytes verified in the window.
    pub bytes_received: u64,
    /// Latency percentiles (µs) of the messages of this window; `None` when none completed.
    pub p50_us: Option<u64>,
    /// See `p50_us`.
    pub p99_us: Option<u64>,
    /// See `p50_us`.
    pub max_us: Option<u64>,
    /// Connections open at the window's end.
    pub open: u64,
    /// Errors in the window.
    pub errors: u64,
}

/// The run over time, for the `--report` page and the JSON's `timeline`:
/// a [`Second`] per live line and the moments that divide the run into its
/// phases, all in seconds since the start. Ramp-up runs from 0 to `steady_at`
/// (every connection asked for is connected, or has failed), steady from there
/// to `drain_at` (the deadline or a signal: no new message starts; with `-n`,
/// the first connection done with its messages), drain from there to `end_at`.
/// A phase the run never reached is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// One point per window, in order.
    pub seconds: Vec<Second>,
    /// End of the ramp-up.
    pub steady_at: Option<f64>,
    /// Start of the drain.
    pub drain_at: Option<f64>,
    /// End of the run.
    pub end_at: f64,
}

/// Everything counted during the run.
pub struct Stats {
    /// Per-message latency in µs: from handing the message's first byte to the
    /// kernel to noticing its last echoed byte.
    latency: Histogram<u64>,
    /// Connect latency in µs: from `connect()` to the socket reporting it is
    /// connected, and with `--tls` to the end of the TLS handshake.
    connect_latency: Histogram<u64>,
    /// Message latencies of the current second only, for the live line.
    window_latency: Histogram<u64>,
    /// The counters.
    counts: Counts,
    /// The errors.
    errors: Errors,
    /// Counts (and the error total) at the last live line, to print per-second rates.
    window_start: (Instant, Counts, u64),
    /// When the run started: the timeline's 0.
    start: Instant,
    /// The run over time.
    timeline: Timeline,
}

impl Stats {
    /// Empty counters, with `now` as the start of the first live-line second.
    pub fn new(now: Instant) -> Stats {
        Stats {
            latency: histogram::new(),
            connect_latency: histogram::new(),
            window_latency: histogram::new(),
            counts: Counts::default(),
            errors: Errors::default(),
            window_start: (now, Counts::default(), 0),
            start: now,
            timeline: Timeline::default(),
        }
    }

    /// The counters.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The errors.
    pub fn errors(&self) -> &Errors {
        &self.errors
    }

    /// Message latencies (µs).
    pub fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// Connect latencies (µs).
    pub fn connect_latency(&self) -> &Histogram<u64> {
        &self.connect_latency
    }

    /// The run over time.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    fn since_start(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.start).as_secs_f64()
    }

    /// The ramp-up is over (only the first call counts).
    pub fn steady(&mut self, now: Instant) {
        if self.timeline.steady_at.is_none() && self.timeline.drain_at.is_none() {
            self.timeline.steady_at = Some(self.since_start(now));
        }
    }

    /// The drain begins (only the first call counts).
    pub fn drain(&mut self, now: Instant) {
        if self.timeline.drain_at.is_none() {
            self.timeline.drain_at = Some(self.since_start(now));
        }
    }

    /// The run is over: the last, shorter window becomes the last point.
    pub fn end(&mut self, now: Instant) {
        if now > self.window_start.0 {
            self.close_window(now);
        }
        self.timeline.end_at = self.since_start(now);
    }

    /// A `connect()` was started.
    pub fn connect_started(&mut self) {
        self.counts.connecting += 1;
    }

    /// TCP's handshake finished after `latency`; one over a second had its
    /// SYN dropped and sent again (a TLS handshake after it is not counted here).
    pub fn tcp_connected(&mut self, latency: Duration) {
        if latency > SLOW_CONNECT {
            self.counts.slow_connects += 1;
        }
    }

    /// The connection is open after `latency`: its TCP connect, and with
    /// `--tls` its TLS handshake too.
    pub fn connected(&mut self, latency: Duration) {
        self.connect_latency.saturating_record(micros(latency));
        self.counts.connecting -= 1;
        self.counts.open += 1;
        self.counts.peak_open = self.counts.peak_open.max(self.counts.open);
    }

    /// A connection was closed: `was_connected` says whether it got past its
    /// connect, `in_flight` how many messages it still had out (given up, not an
    /// error, when it ended well).
    pub fn closed(&mut self, was_connected: bool, in_flight: u64, end: End) {
        if was_connected {
            self.counts.open -= 1;
        } else {
            self.counts.connecting -= 1;
        }
        match end {
            End::Ok => {
                self.counts.connections_ok += 1;
                self.counts.abandoned += in_flight;
            }
            End::Failed(conn, message) => self.failed(conn, message, 1),
            End::Unfinished { asked } => {
                self.counts.connections_unfinished += 1;
                self.counts.never_connected += u64::from(asked);
            }
        }
    }

    /// `count` connections, from `conn` on, failed (or could not be opened)
    /// for the reason `message`.
    pub fn failed(&mut self, conn: u32, message: String, count: u64) {
        self.errors.push(conn, message);
        self.counts.connections_failed += count;
    }

    /// A message's echo on `conn` came back after `--echo-timeout`, for the reason `message`.
    pub fn late(&mut self, conn: u32, message: String) {
        self.counts.late += 1;
        self.errors.push(conn, message);
    }

    /// `count` of the connections asked for were never started: the run ended first.
    pub fn never_started(&mut self, count: u64) {
        self.counts.connections_unfinished += count;
        self.counts.never_connected += count;
    }

    /// `n` bytes were handed to the kernel.
    #[inline]
    pub fn sent(&mut self, n: u64) {
        self.counts.bytes_sent += n;
    }

    /// `n` echoed bytes were read and verified.
    #[inline]
    pub fn received(&mut self, n: u64) {
        self.counts.bytes_received += n;
    }

    /// One message's echo is complete and verified.
    #[inline]
    pub fn message(&mut self, latency: Duration) {
        let us = micros(latency);
        self.counts.messages += 1;
        self.latency.saturating_record(us);
        self.window_latency.saturating_record(us);
    }

    /// The line printed every second: the rates since the previous one. The
    /// same numbers become the timeline's next point.
    pub fn live_line(&mut self, now: Instant, since_start: Duration) -> String {
        let w = self.close_window(now);
        let c = &self.counts;
        let mut line = format!(
            "[{:5.1}s] open {:>7}{}  {:>9} msg/s  out {:>11}  in {:>11}  p99 {}",
            since_start.as_secs_f64(),
            units::grouped(c.open),
            if c.connecting > 0 {
                format!(" (+{} connecting)", units::grouped(c.connecting))
            } else {
                String::new()
            },
            units::grouped((w.messages as f64 / w.secs).round() as u64),
            units::byte_rate(w.bytes_sent, w.secs),
            units::byte_rate(w.bytes_received, w.secs),
            w.p99_us.map_or_else(|| "-".to_string(), units::micros),
        );
        if self.errors.total() > 0 {
            let _ = write!(line, "  errors {}", units::grouped(self.errors.total()));
        }
        line
    }

    /// The window since the last live line as a [`Second`], kept in the
    /// timeline; the next window starts at `now`.
    fn close_window(&mut self, now: Instant) -> Second {
        let (then, before, errors_before) = self.window_start;
        let (c, h) = (&self.counts, &self.window_latency);
        let quantile = |q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q));
        let second = Second {
            at: self.since_start(now),
            secs: now.saturating_duration_since(then).as_secs_f64().max(1e-9),
            messages: c.messages - before.messages,
            bytes_sent: c.bytes_sent - before.bytes_sent,
            bytes_received: c.bytes_received - before.bytes_received,
            p50_us: quantile(0.50),
            p99_us: quantile(0.99),
            max_us: (!h.is_empty()).then(|| h.max()),
            open: c.open,
            errors: self.errors.total() - errors_before,
        };
        if self.timeline.seconds.len() < MAX_SECONDS_KEPT {
            self.timeline.seconds.push(second);
        }
        self.window_latency.reset();
        self.window_start = (now, self.counts, self.errors.total());
        second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_the_first_kinds_and_count_all() {
        let mut e = Errors::default();
        for i in 0..(MAX_ERRORS_KEPT + 5) {
            e.push(i as u32, format!("error {i}"));
        }
        assert_eq!(e.total(), MAX_ERRORS_KEPT as u64 + 5);
        assert_eq!(e.kept().len(), MAX_ERRORS_KEPT);
        assert_eq!(e.kept()[0].to_string(), "connection 0: error 0");
    }

    #[test]
    fn the_same_error_on_many_connections_is_one_line_with_its_count() {
        let mut e = Errors::default();
        for conn in 0..1500 {
            e.push(conn, "connect failed: ECONNREFUSED".to_string());
        }
        e.push(7, "short echo".to_string());
        e.push(8, "late".to_string());
        e.push(8, "late".to_string());
        let lines: Vec<String> = e.kept().iter().map(|g| g.to_string()).collect();
        assert_eq!(
            lines,
            [
                "1,500 × connect failed: ECONNREFUSED (first on connections 0, 1, 2)",
                "connection 7: short echo",
                "2 × late (first on connection 8)",
            ]
        );
        assert_eq!(e.total(), 1503);
    }

    #[test]
    fn a_connection_is_counted_once_in_each_state() {
        let mut s = Stats::new(Instant::now());
        s.connect_started();
        s.connect_started();
        s.connected(Duration::from_micros(50));
        assert_eq!((s.counts().connecting, s.counts().open), (1, 1));
        s.closed(true, 2, End::Ok);
        s.closed(false, 0, End::Unfinished { asked: true });
        let c = s.counts();
        assert_eq!((c.connecting, c.open), (0, 0));
        assert_eq!((c.connections_ok, c.connections_unfinished, c.abandoned), (1, 1, 2));
        assert_eq!((c.peak_open, c.never_connected, c.slow_connects), (1, 1, 0));
    }

    /// Issue 15, point 12: counts grouped, rates in MiB/s (the line said `MB/s`).
    #[test]
    fn the_live_line_groups_counts_and_gives_rates_in_mib_per_s() {
        let t0 = Instant::now();
        let mut s = Stats::new(t0);
        for _ in 0..1500 {
            s.connect_started();
            s.connected(Duration::from_micros(10));
        }
        for _ in 0..12_345 {
            s.message(Duration::from_micros(100));
        }
        s.sent(3 << 20);
        s.received(3 << 20);
        let line = s.live_line(t0 + Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(
            line,
            "[  1.0s] open   1,500     12,345 msg/s  out   3.0 MiB/s  in   3.0 MiB/s  p99 100 µs"
        );
    }

    #[test]
    fn the_timeline_has_a_point_per_window_and_keeps_the_first_phase_marks() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut s = Stats::new(t0);
        s.message(Duration::from_micros(100));
        s.message(Duration::from_micros(300));
        s.steady(at(500));
        s.steady(at(800));
        let _ = s.live_line(at(1000), Duration::from_secs(1));
        s.message(Duration::from_micros(200));
        s.drain(at(1200));
        s.drain(at(1300));
        s.end(at(1500));
        let t = s.timeline();
        let got: Vec<_> = t.seconds.iter().map(|p| (p.messages, p.max_us)).collect();
        assert_eq!(got, [(2, Some(300)), (1, Some(200))]);
        assert!((t.seconds[1].secs - 0.5).abs() < 1e-6);
        assert_eq!((t.steady_at, t.drain_at, t.end_at), (Some(0.5), Some(1.2), 1.5));
    }
}
