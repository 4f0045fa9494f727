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
//! * the per-second `timeline`s are lined up by wall clock (each run started
//!   `seconds` before its `ended_unix`) and added second by second: counts
//!   summed; a second's percentiles cannot be summed, so the highest of the
//!   runs' is kept, an upper bound. Ramp-up ends when the last run's does, the
//!   drain starts when the first run's does. The `--report` page of a merge is
//!   drawn from this, like a single run's.
//!
//! A merged summary is a summary: its `--json` can be merged again (its
//! interval is then taken as one, ending at its last run's end).

use std::ffi::OsString;
use std::path::Path;

use progjar::cli::{Failure, EXIT_USAGE};

use crate::report::{Latency, Summary};
use crate::stats::{Second, Timeline, MAX_ERRORS_KEPT};

/// Read every file and add the runs up. Any file that is not a summary with
/// histograms is one line naming the file, and exit 2.
pub fn merge_files(paths: &[OsString]) -> Result<Summary, Failure> {
    let mut runs = Vec::with_capacity(paths.len());
    for path in paths {
        let name = Path::new(path).display().to_string();
        let bad = |why: String| Failure::new(EXIT_USAGE, format!("{name}: {why}"));
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let summary: Summary = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("not a progjar-stress --json summary ({e})")))?;
        runs.push((name, summary));
    }
    merge(runs).map_err(|why| Failure::new(EXIT_USAGE, why))
}

/// Add up `runs` (file name, summary); at least one.
pub fn merge(runs: Vec<(String, Summary)>) -> Result<Summary, String> {
    let mut latency = None;
    let mut connect = None;
    for (name, run) in &runs {
        let bad = |why: String| {
            format!("{name}: {why} (a progjar-stress --json summary made by this version has one)")
        };
        let add = |sum: &mut Option<hdrhistogram::Histogram<u64>>, l: &Latency, what: &str| {
            let h = l.decode().map_err(|why| bad(format!("{what}: {why}")))?;
            match sum {
                None => *sum = Some(h),
                Some(s) => s.add(&h).map_err(|e| bad(format!("{what}: cannot be added: {e:?}")))?,
            }
            Ok::<(), String>(())
        };
        add(&mut latency, &run.latency_us, "latency_us")?;
        add(&mut connect, &run.connect_latency_us, "connect_latency_us")?;
    }
    let (Some(latency), Some(connect)) = (latency, connect) else {
        return Err("merge needs at least one --json file".to_string());
    };
    let mut total = runs[0].1.clone();
    total.latency_us = Latency::of(&latency, true);
    total.connect_latency_us = Latency::of(&connect, false);
    total.seconds =
        union_seconds(runs.iter().map(|(_, r)| (r.ended_unix - r.seconds, r.ended_unix)));
    total.ended_unix = runs.iter().map(|(_, r)| r.ended_unix).fold(f64::MIN, f64::max);
    total.notes = differences(&runs);
    total.errors.clear();
    total.timeline = merge_timelines(&runs);
    for (_, run) in runs.iter().skip(1) {
        total.runs += run.runs;
        total.connections += run.connections;
        total.idle += run.idle;
        total.connections_ok += run.connections_ok;
        total.connections_failed += run.connections_failed;
        total.connections_unfinished += run.connections_unfinished;
        total.messages += run.messages;
        total.messages_abandoned += run.messages_abandoned;
        total.messages_late += run.messages_late;
        total.bytes_sent += run.bytes_sent;
        total.bytes_received += run.bytes_received;
        total.error_count += run.error_count;
    }
    for (name, run) in &runs {
        total.notes.extend(run.notes.iter().map(|n| format!("{name}: {n}")));
        let room = MAX_ERRORS_KEPT.saturating_sub(total.errors.len());
        total.errors.extend(run.errors.iter().take(room).map(|e| format!("{name}: {e}")));
    }
    total.derive();
    Ok(total)
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
    notes
}

/// The runs' timelines on one clock, added second by second (see the module doc).
fn merge_timelines(runs: &[(String, Summary)]) -> Timeline {
    let start_of = |r: &Summary| r.ended_unix - r.seconds;
    let t0 = runs.iter().map(|(_, r)| start_of(r)).fold(f64::MAX, f64::min);
    let mut merged = Timeline::default();
    for (_, run) in runs {
        let shift = start_of(run) - t0;
        for second in &run.timeline.seconds {
            // Windows end a whole second after their run's start: on the merged
            // clock, the nearest whole second names the window they share.
            let at = (second.at + shift).round().max(1.0);
            let slot = at as usize - 1;
            if merged.seconds.len() <= slot {
                merged.seconds.resize(slot + 1, Second::default());
            }
            add_second(&mut merged.seconds[slot], second, at);
        }
        if let Some(steady) = run.timeline.steady_at.map(|t| t + shift) {
            merged.steady_at = Some(merged.steady_at.map_or(steady, |s| s.max(steady)));
        }
        if let Some(drain) = run.timeline.drain_at.map(|t| t + shift) {
            merged.drain_at = Some(merged.drain_at.map_or(drain, |d| d.min(drain)));
        }
        merged.end_at = merged.end_at.max(run.timeline.end_at + shift);
    }
    // Seconds in which no run had a window (a gap between runs) stay as zeros.
    for (i, second) in merged.seconds.iter_mut().enumerate() {
        if second.secs == 0.0 {
            second.at = i as f64 + 1.0;
            second.secs = 1.0;
        }
    }
    merged
}

/// Add one run's window to the merged second ending at `at`.
fn add_second(sum: &mut Second, one: &Second, at: f64) {
    sum.at = at;
    sum.secs = sum.secs.max(one.secs);
    sum.messages += one.messages;
    sum.bytes_sent += one.bytes_sent;
    sum.bytes_received += one.bytes_received;
    sum.open += one.open;
    sum.errors += one.errors;
    sum.p50_us = sum.p50_us.max(one.p50_us);
    sum.p99_us = sum.p99_us.max(one.p99_us);
    sum.max_us = sum.max_us.max(one.max_us);
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
