//! `progjar-stress merge a.json b.json ...`: one report for runs made side by
//! side, e.g. from several load machines against one server, because one
//! machine runs out of source ports and CPU before a server does.
//!
//! What adds up and how:
//! * counts and bytes are summed;
//! * latencies come from the runs' histograms added together, so p99 is the p99
//!   of every message of every run (an average of the runs' p99s is not a
//!   percentile of anything);
//! * the time is the union of the runs' intervals (each ends at `ended_unix` and
//!   lasted `seconds`): runs side by side count once, runs one after another add
//!   up, a gap between them counts for nothing. The rates are the totals over
//!   that time. Comparing clocks of several machines assumes they agree to a few
//!   milliseconds (NTP does); the lab's machines share one kernel clock.
//! * errors and notes keep the name of the file they came from;
//! * the per-second `timeline`s are lined up by wall clock and added second by
//!   second, the gaps between runs cut out (`lineup.rs`).
//!
//! A merged summary is a summary: its `--json` can be merged again (its
//! interval is then taken as one, ending at its last run's end).
//!
//! The files may come from anywhere, so each is checked before it is added:
//! its size before it is read, its histograms' lengths before they are
//! allocated (`histogram.rs`), its times (finite, and no run longer than
//! [`MAX_RUN_SECS`]), and every sum, which must fit in 64 bits. Any file that
//! fails is one line naming it, and exit 2.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read as _;
use std::path::Path;

use hdrhistogram::Histogram;
use progjar::cli::{Failure, EXIT_USAGE};
use progjar::units;

use crate::lineup::merge_timelines;
use crate::report::{Latency, Summary};
use crate::stats::{ErrorGroup, MAX_ERRORS_KEPT, MAX_SECONDS_KEPT};

/// The largest file taken as a summary: a day of timeline points is about
/// 17 MiB of JSON, the rest a few KiB. A larger file is refused unread.
const MAX_FILE: u64 = 64 << 20;

/// The longest a run (or merged runs) may have lasted: a hundred days. A run's
/// `-d` is at most a day, and `-n` runs are shorter still in practice; a
/// time past this is a damaged or made-up file.
const MAX_RUN_SECS: f64 = 100.0 * 86_400.0;

/// Read every file and add the runs up. Any file that is not a summary with
/// histograms is one line naming the file, and exit 2.
pub fn merge_files(paths: &[OsString]) -> Result<Summary, Failure> {
    let mut runs = Vec::with_capacity(paths.len());
    for path in paths {
        let name = Path::new(path).display().to_string();
        let bad = |why: String| Failure::new(EXIT_USAGE, format!("{name}: {why}"));
        let bytes = read_bounded(Path::new(path)).map_err(bad)?;
        let summary: Summary = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("not a progjar-stress --json summary ({e})")))?;
        check_times(&summary).map_err(bad)?;
        runs.push((name, summary));
    }
    merge(runs).map_err(|why| Failure::new(EXIT_USAGE, why))
}

/// The file's bytes, if it is no larger than [`MAX_FILE`].
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let too_big =
        || format!("it is larger than {}, more than any summary can be", units::bytes(MAX_FILE));
    let file = File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    if file.metadata().is_ok_and(|m| m.len() > MAX_FILE) {
        return Err(too_big());
    }
    // A pipe or /proc file has no length: read one byte past the limit to know.
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Every time in `s` is a finite, non-negative number of seconds, no run
/// lasted longer than [`MAX_RUN_SECS`], and its timeline's points lie inside it.
fn check_times(s: &Summary) -> Result<(), String> {
    let t = &s.timeline;
    let fine = |v: f64, max: f64| v.is_finite() && (0.0..=max).contains(&v);
    let named = [
        ("ended_unix", s.ended_unix, f64::MAX),
        ("seconds", s.seconds, MAX_RUN_SECS),
        ("duration_secs", s.duration_secs.unwrap_or(0.0), MAX_RUN_SECS),
        ("timeline.end_at", t.end_at, MAX_RUN_SECS),
        ("timeline.steady_at", t.steady_at.unwrap_or(0.0), t.end_at),
        ("timeline.drain_at", t.drain_at.unwrap_or(0.0), t.end_at),
    ];
    for (what, v, max) in named {
        if !fine(v, max) {
            return Err(format!("{what} is {v} s, not a time from 0 to {max} s"));
        }
    }
    if t.end_at > s.ended_unix {
        return Err(format!("its timeline lasts {} s, more than since 1970", t.end_at));
    }
    if t.seconds.len() > MAX_SECONDS_KEPT {
        return Err(format!("its timeline has {} points, more than a run keeps", t.seconds.len()));
    }
    // Windows end in order, each inside the run (a second's slack for rounding).
    let mut last = 0.0;
    for p in &t.seconds {
        if !(fine(p.at, t.end_at + 1.0) && p.at >= last && fine(p.secs, p.at + 1.0)) {
            return Err(format!(
                "its timeline has a second at {} s lasting {} s, outside the run's {} s",
                p.at, p.secs, t.end_at
            ));
        }
        last = p.at;
    }
    Ok(())
}

/// Add up `runs` (file name, summary); at least one.
pub fn merge(runs: Vec<(String, Summary)>) -> Result<Summary, String> {
    let (latency, connect) = add_histograms(&runs)?;
    let mut total = runs[0].1.clone();
    total.latency_us = Latency::of(&latency, true);
    total.connect_latency_us = Latency::of(&connect, false);
    total.seconds =
        union_seconds(runs.iter().map(|(_, r)| (r.ended_unix - r.seconds, r.ended_unix)));
    total.ended_unix = runs.iter().map(|(_, r)| r.ended_unix).fold(f64::MIN, f64::max);
    total.notes = differences(&runs);
    let (timeline, gaps) = merge_timelines(&runs)?;
    total.timeline = timeline;
    if gaps > 0.0 {
        // Whole seconds past a few minutes: a year is not read in hundredths.
        let gaps = match gaps {
            g if g < 1000.0 => units::micros((g * 1e6) as u64),
            g => format!("{} s", units::grouped(g.round() as u64)),
        };
        total.notes.push(format!(
            "the runs leave {gaps} between them with no run going: cut out of the timeline"
        ));
    }
    for (name, run) in runs.iter().skip(1) {
        add_counts(&mut total, run).map_err(|what| {
            format!("{name}: its {what}, added to the runs before it, pass what 64 bits can count")
        })?;
    }
    total.errors.clear();
    total.incomplete = None;
    let incomplete = runs.iter().filter(|(_, r)| r.incomplete.is_some()).count();
    for (name, run) in &runs {
        total.notes.extend(run.notes.iter().map(|n| format!("{name}: {n}")));
        let room = MAX_ERRORS_KEPT.saturating_sub(total.errors.len());
        total.errors.extend(run.errors.iter().take(room).map(|e| from_file(name, e)));
        if let (None, Some(why)) = (&total.incomplete, &run.incomplete) {
            let others = match incomplete - 1 {
                0 => String::new(),
                n => format!("; and {} more", units::plural(n as u64, "run")),
            };
            total.incomplete = Some(format!("{name}: {why}{others}"));
        }
    }
    total.derive();
    Ok(total)
}

/// The runs' message and connect latency histograms, each added together.
fn add_histograms(runs: &[(String, Summary)]) -> Result<(Histogram<u64>, Histogram<u64>), String> {
    let mut latency: Option<Histogram<u64>> = None;
    let mut connect: Option<Histogram<u64>> = None;
    for (name, run) in runs {
        let bad = |why: String| {
            format!("{name}: {why} (a progjar-stress --json summary made by this version has one)")
        };
        let add = |sum: &mut Option<Histogram<u64>>, l: &Latency, what: &str| {
            let h = l.decode().map_err(|why| bad(format!("{what}: {why}")))?;
            match sum {
                None => *sum = Some(h),
                // hdrhistogram saturates a count that overflows: refuse it instead.
                Some(s) if s.len().checked_add(h.len()).is_none() => {
                    return Err(format!("{name}: {what}: its count, added to the runs before it, passes what 64 bits can count"))
                }
                Some(s) => s.add(&h).map_err(|e| bad(format!("{what}: cannot be added: {e:?}")))?,
            }
            Ok::<(), String>(())
        };
        add(&mut latency, &run.latency_us, "latency_us")?;
        add(&mut connect, &run.connect_latency_us, "connect_latency_us")?;
    }
    match (latency, connect) {
        (Some(latency), Some(connect)) => Ok((latency, connect)),
        _ => Err("merge needs at least one --json file".to_string()),
    }
}

/// Add `run`'s counts to `total`'s; the name of the count that would
/// overflow, if one would.
fn add_counts(total: &mut Summary, run: &Summary) -> Result<(), &'static str> {
    let add = |sum: &mut u64, more: u64, what| {
        *sum = sum.checked_add(more).ok_or(what)?;
        Ok::<(), &'static str>(())
    };
    add(&mut total.runs, run.runs, "runs")?;
    add(&mut total.connections, run.connections, "connections")?;
    add(&mut total.idle, run.idle, "idle")?;
    add(&mut total.connections_ok, run.connections_ok, "connections_ok")?;
    add(&mut total.connections_failed, run.connections_failed, "connections_failed")?;
    add(&mut total.connections_unfinished, run.connections_unfinished, "connections_unfinished")?;
    add(&mut total.connects_over_1s, run.connects_over_1s, "connects_over_1s")?;
    add(&mut total.messages, run.messages, "messages")?;
    add(&mut total.messages_abandoned, run.messages_abandoned, "messages_abandoned")?;
    add(&mut total.messages_late, run.messages_late, "messages_late")?;
    add(&mut total.bytes_sent, run.bytes_sent, "bytes_sent")?;
    add(&mut total.bytes_received, run.bytes_received, "bytes_received")?;
    if let (Some(sum), Some(more)) = (&mut total.tls, &run.tls) {
        add(&mut sum.handshakes, more.handshakes, "tls.handshakes")?;
        add(&mut sum.other_agreements, more.other_agreements, "tls.other_agreements")?;
    }
    add(&mut total.error_count, run.error_count, "error_count")
}

/// A run's error, named after the file it came from.
fn from_file(name: &str, e: &ErrorGroup) -> ErrorGroup {
    let file = match &e.file {
        Some(inner) => format!("{name}: {inner}"),
        None => name.to_string(),
    };
    ErrorGroup { file: Some(file), ..e.clone() }
}

/// The length of the union of the intervals `(start, end)`.
fn union_seconds(intervals: impl Iterator<Item = (f64, f64)>) -> f64 {
    let mut sorted: Vec<(f64, f64)> = intervals.collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut covered_to = f64::MIN;
    for (start, end) in sorted {
        let from = start.max(covered_to);
        if end > from {
            total += end - from;
            covered_to = end;
        }
    }
    total
}

/// A note for each setting in which the runs differ (the first run's is shown).
fn differences(runs: &[(String, Summary)]) -> Vec<String> {
    let first = &runs[0].1;
    let mut notes = Vec::new();
    let mut check = |what: &str, differs: &dyn Fn(&Summary) -> bool| {
        if runs.iter().any(|(_, r)| differs(r)) {
            notes.push(format!("the runs differ in {what}: the first run's is shown"));
        }
    };
    check("target", &|r| r.target != first.target);
    check("message size", &|r| r.message_size != first.message_size);
    check("pipeline", &|r| r.pipeline != first.pipeline);
    check("duration", &|r| r.duration_secs != first.duration_secs);
    check("messages per connection", &|r| {
        r.messages_per_connection != first.messages_per_connection
    });
    // TLS or not, and what was agreed; the handshakes are added up all the same.
    let agreed = |r: &Summary| {
        r.tls.as_ref().map(|t| {
            (
                t.version.clone(),
                t.cipher_suite.clone(),
                t.key_exchange.clone(),
                t.certificate_checked,
            )
        })
    };
    check("TLS", &|r| agreed(r) != agreed(first));
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_is_the_union_of_the_intervals() {
        assert_eq!(union_seconds([(0.0, 10.0), (0.5, 10.5)].into_iter()), 10.5);
        assert_eq!(union_seconds([(20.0, 25.0), (0.0, 10.0)].into_iter()), 15.0);
        assert_eq!(union_seconds([(0.0, 10.0), (2.0, 3.0)].into_iter()), 10.0);
    }
}
