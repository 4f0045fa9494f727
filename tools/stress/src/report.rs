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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use progjar::cli::{Failure, EXIT_FAILURE, EXIT_INCOMPLETE};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Until};
use crate::histogram;
use crate::stats::{unlisted, ErrorGroup, Stats, Timeline};
use crate::tls::Tally;
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
    /// A signal stopped the run early.
    pub interrupted: bool,
    /// `--tls`: the handshakes, and what they agreed on.
    pub tls: Option<&'a Tally>,
}

impl Report<'_> {
    /// The run as a [`Summary`].
    pub fn summary(&self) -> Summary {
        let c = self.config;
        let s = self.stats.counts();
        let (duration_secs, messages_per_connection) = match c.until {
            Until::After(d) => (Some(d.as_secs_f64()), c.per_connection),
            Until::Messages(n) => (None, Some(n)),
        };
        // Made right after the run ended: the wall clock places the run in time,
        // so `merge` can tell runs that overlapped from runs one after the other.
        let ended_unix =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let mut notes = self.notes.to_vec();
        notes.extend(self.slow_connects());
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
            connects_over_1s: s.slow_connects,
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
            notes,
            ok: false,
            result: Verdict::Ok,
            incomplete: self.incomplete(),
            timeline: self.stats.timeline().clone(),
            tls: self.tls.map(TlsSummary::of),
        };
        summary.derive();
        summary
    }

    /// Why the run did not test what was asked, if it did not: some of the
    /// connections asked for never connected, so they were never all open at
    /// once. (`--per-connection` replacements cut off by the end are no loss,
    /// and with `-n` or `--per-connection` connections come and go, so there
    /// the count of those that never connected says it.)
    fn incomplete(&self) -> Option<String> {
        let c = self.stats.counts();
        if c.never_connected == 0 {
            return None;
        }
        let asked = u64::from(self.config.connections) + u64::from(self.config.idle);
        let asked = units::plural(asked, "connection");
        let when = if self.interrupted {
            "a signal stopped the run while connecting"
        } else {
            "the run ended while connecting"
        };
        let renewing =
            self.config.per_connection.is_some() || matches!(self.config.until, Until::Messages(_));
        Some(if renewing {
            format!(
                "{} of the {asked} asked for never connected ({when})",
                units::grouped(c.never_connected)
            )
        } else {
            format!("at most {} of {asked} were open at once ({when})", units::grouped(c.peak_open))
        })
    }

    /// A note when connects took over a second: SYNs were dropped and resent.
    fn slow_connects(&self) -> Option<String> {
        let slow = self.stats.counts().slow_connects;
        (slow > 0).then(|| {
            format!(
                "{} took over 1 s (the slowest {}): their SYNs were dropped and sent again, most \
                 often because the server's listen backlog overflowed; use --connect-rate, or a \
                 larger backlog (progjar server --backlog 4096)",
                units::plural(slow, "connect"),
                units::micros(self.stats.connect_latency().max())
            )
        })
    }
}

/// A run's verdict, in the JSON as `"OK"`, `"INCOMPLETE"` or `"FAILED"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Every connection asked for connected, every byte came back right.
    #[default]
    Ok,
    /// Nothing went wrong, but not every connection asked for connected.
    Incomplete,
    /// A byte was lost or wrong, or a connection failed.
    Failed,
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
    /// Connects that took over a second (SYNs dropped and sent again).
    #[serde(default)]
    pub connects_over_1s: u64,
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
    /// Each kind of error once, with its count (the first 20 kinds).
    pub errors: Vec<ErrorGroup>,
    pub notes: Vec<String>,
    /// The verdict is OK: the run did all that was asked, and nothing went wrong.
    pub ok: bool,
    /// The verdict.
    #[serde(default)]
    pub result: Verdict,
    /// Why the run is INCOMPLETE (`None` when it is not).
    #[serde(default)]
    pub incomplete: Option<String>,
    /// The run second by second, and its phases (`stats::Timeline`); after
    /// `merge`, the runs' seconds on one clock, added up.
    #[serde(default)]
    pub timeline: Timeline,
    /// `--tls`: what the handshakes agreed on, and how many there were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSummary>,
}

/// `--tls`: what the handshakes agreed on and how many there were, in the
/// JSON as `"tls"` (left out without `--tls`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsSummary {
    /// `TLS 1.3` or `TLS 1.2`, as the first handshake agreed; `None` when none finished.
    pub version: Option<String>,
    /// rustls's name of the cipher suite, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub cipher_suite: Option<String>,
    /// rustls's name of the key exchange group, e.g. `X25519MLKEM768`.
    pub key_exchange: Option<String>,
    /// Handshakes that agreed on something else than the first (0: all alike).
    pub other_agreements: u64,
    /// Handshakes finished (each one inside its connection's connect time).
    pub handshakes: u64,
    /// Handshakes per second, over `seconds`.
    pub handshakes_per_sec: f64,
    /// The server's certificate was checked (`--ca`); false with `--insecure`.
    pub certificate_checked: bool,
}

impl TlsSummary {
    /// The summary of `tally` (its rate is left to [`Summary::derive`]).
    fn of(tally: &Tally) -> TlsSummary {
        let agreed = tally.agreed.as_ref();
        TlsSummary {
            version: agreed.map(|a| a.version()),
            cipher_suite: agreed.map(|a| a.cipher_suite()),
            key_exchange: agreed.map(|a| a.key_exchange()),
            other_agreements: tally.other,
            handshakes: tally.handshakes,
            handshakes_per_sec: 0.0,
            certificate_checked: tally.checked,
        }
    }

    /// Its lines in the summary: what was agreed, and how many handshakes
    /// (per second too when connections are `renewed`, `--per-connection`).
    fn write(&self, t: &mut String, renewed: bool) {
        let checked = match self.certificate_checked {
            true => "the certificate checked (--ca)",
            false => "the certificate NOT checked (--insecure)",
        };
        let (Some(version), Some(suite), Some(group)) =
            (&self.version, &self.cipher_suite, &self.key_exchange)
        else {
            let _ = writeln!(t, "tls:         no handshake finished; {checked}");
            return;
        };
        let others = match self.other_agreements {
            0 => String::new(),
            n => format!("; {} agreed on something else", units::plural(n, "handshake")),
        };
        let _ =
            writeln!(t, "tls:         {version}, {suite}, key exchange {group}; {checked}{others}");
        let rate = match renewed {
            true => format!(" = {}/s", units::grouped(self.handshakes_per_sec.round() as u64)),
            false => String::new(),
        };
        let _ = writeln!(
            t,
            "handshakes:  {}{rate} (each inside its connection's connect time)",
            units::grouped(self.handshakes)
        );
    }
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
        Latency {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: detailed.then(|| h.value_at_quantile(0.90)),
            p99: h.value_at_quantile(0.99),
            p999: detailed.then(|| h.value_at_quantile(0.999)),
            max: h.max(),
            histogram: histogram::encode(h),
        }
    }

    /// The histogram back from its text, or why not.
    pub fn decode(&self) -> Result<Histogram<u64>, String> {
        histogram::decode(self.histogram.as_deref().ok_or("it has no histogram")?)
    }
}

impl Summary {
    /// Fill in what follows from the counts: the rates and the verdict.
    pub fn derive(&mut self) {
        let seconds = self.seconds;
        let rate = |count: u64| if seconds > 0.0 { count as f64 / seconds } else { 0.0 };
        self.messages_per_sec = rate(self.messages);
        self.connections_per_sec = rate(self.connections_ok);
        self.gbit_per_sec_sent = units::gbit_rate(self.bytes_sent, seconds);
        self.gbit_per_sec_received = units::gbit_rate(self.bytes_received, seconds);
        if let Some(tls) = &mut self.tls {
            tls.handshakes_per_sec = rate(tls.handshakes);
        }
        self.result = if self.error_count > 0 || self.connections_failed > 0 {
            Verdict::Failed
        } else if self.incomplete.is_some() {
            Verdict::Incomplete
        } else {
            Verdict::Ok
        };
        self.ok = self.result == Verdict::Ok;
    }

    /// The verdict as the program's end: `Ok` for OK, else a [`Failure`]
    /// (exit 1 FAILED, 8 INCOMPLETE) whose line points at the summary, which
    /// says the errors once.
    pub fn verdict(&self) -> Result<(), Failure> {
        let runs = if self.runs > 1 { "the merged runs" } else { "the run" };
        match self.result {
            Verdict::Ok => Ok(()),
            Verdict::Incomplete => Err(Failure::new(
                EXIT_INCOMPLETE,
                format!("{runs} did not test all that was asked (the summary says why)"),
            )),
            Verdict::Failed => Err(Failure::new(
                EXIT_FAILURE,
                format!(
                    "{runs} failed: {}, {} failed (the summary lists them)",
                    units::plural(self.error_count, "error"),
                    units::plural(self.connections_failed, "connection")
                ),
            )),
        }
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
        let _ = match (&self.result, &self.incomplete) {
            (Verdict::Incomplete, Some(why)) => write!(t, "result:      INCOMPLETE: {why}"),
            (Verdict::Failed, _) => write!(t, "result:      FAILED"),
            _ => write!(t, "result:      OK"),
        };
        t
    }

    /// What was asked, in words: `for 10 s`, `100 messages each`.
    fn mode(&self) -> String {
        let secs = |d: f64| units::secs(Duration::try_from_secs_f64(d).unwrap_or_default());
        match (self.duration_secs, self.messages_per_connection) {
            (Some(d), None) => format!("for {}", secs(d)),
            (Some(d), Some(n)) => {
                format!(
                    "for {}, a new connection after every {}",
                    secs(d),
                    units::plural(n, "message")
                )
            }
            (None, n) => format!("{} each", units::plural(n.unwrap_or(0), "message")),
        }
    }

    /// What was asked, and what was counted.
    fn write_totals(&self, t: &mut String) {
        let g = units::grouped;
        if self.runs > 1 {
            let _ = writeln!(
                t,
                "merged:      {} runs; counts added, latencies of all their messages together, \
                 time the union of the runs' intervals",
                g(self.runs)
            );
        }
        let _ = writeln!(
            t,
            "target:      {} ({} + {} idle, {} messages, pipeline {}, {})",
            self.target,
            units::plural(self.connections, "connection"),
            g(self.idle),
            units::bytes(self.message_size as u64),
            self.pipeline,
            self.mode()
        );
        let _ = writeln!(
            t,
            "connections: {} ok, {} failed, {} unfinished",
            g(self.connections_ok),
            g(self.connections_failed),
            g(self.connections_unfinished)
        );
        let late = self.messages_late;
        let _ = writeln!(
            t,
            "messages:    {} verified in {} = {} msg/s ({} in flight abandoned at the end{})",
            g(self.messages),
            units::micros((self.seconds * 1e6) as u64),
            g(self.messages_per_sec.round() as u64),
            g(self.messages_abandoned),
            if late > 0 { format!(", {} late", g(late)) } else { String::new() }
        );
        let renewed = self.duration_secs.is_some() && self.messages_per_connection.is_some();
        if renewed {
            let tls = if self.tls.is_some() { "TLS handshake, " } else { "" };
            let _ = writeln!(
                t,
                "connects:    {} connections/s (connect, {tls}messages, close, as netperf's TCP_CRR)",
                g(self.connections_per_sec.round() as u64)
            );
        }
        if let Some(tls) = &self.tls {
            tls.write(t, renewed);
        }
        self.write_bytes(t);
    }

    /// The bytes each way, and their rates.
    fn write_bytes(&self, t: &mut String) {
        let _ = writeln!(
            t,
            "sent:        {} = {:.3} Gbit/s",
            units::bytes(self.bytes_sent),
            self.gbit_per_sec_sent
        );
        let _ = writeln!(
            t,
            "received:    {} = {:.3} Gbit/s (every byte checked)",
            units::bytes(self.bytes_received),
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
                "connect:     p50 {}  p99 {}  max {}{}",
                units::micros(l.p50),
                units::micros(l.p99),
                units::micros(l.max),
                if self.tls.is_some() { " (TCP connect + TLS handshake)" } else { "" }
            );
        }
    }

    /// The notes, then each kind of error once, with its count.
    fn write_problems(&self, t: &mut String) {
        for note in &self.notes {
            let _ = writeln!(t, "note:        {note}");
        }
        if self.error_count == 0 {
            let _ = writeln!(t, "errors:      none");
            return;
        }
        let _ = writeln!(t, "errors:      {}", units::grouped(self.error_count));
        for e in &self.errors {
            let _ = writeln!(t, "  {e}");
        }
        let more = unlisted(&self.errors, self.error_count);
        if more > 0 {
            let _ = writeln!(t, "  … and {} of other kinds", units::plural(more, "more error"));
        }
    }
}
