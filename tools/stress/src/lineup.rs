//! The per-second timelines of merged runs on one clock, for `merge`'s
//! `timeline` and its `--report` page.
//!
//! Each run's timeline is placed by wall clock (it ended at `ended_unix`, and
//! began `end_at` before that) and added second by second to the others: counts
//! summed; a second's percentiles cannot be summed, so the highest of the
//! runs' is kept, an upper bound. Ramp-up ends when the last run's does, the
//! drain starts when the first run's does.
//!
//! Only the runs' own time is drawn: where no run was going (two runs a year
//! apart), the gap is cut out of the merged clock, so the timeline holds at
//! most the runs' own points (and at most [`MAX_SECONDS_KEPT`]) whatever the
//! gap, instead of one point per second of it.

use std::collections::BTreeMap;

use crate::report::Summary;
use crate::stats::{Second, Timeline, MAX_SECONDS_KEPT};

/// The runs' timelines on one clock, with the gaps between them cut out, and
/// how long those gaps were (s). Fails when a second's counts would overflow.
pub fn merge_timelines(runs: &[(String, Summary)]) -> Result<(Timeline, f64), String> {
    let intervals: Vec<(f64, f64)> =
        runs.iter().map(|(_, r)| (r.ended_unix - r.timeline.end_at, r.ended_unix)).collect();
    let clock = Clock::new(&intervals);
    let mut seconds: BTreeMap<u64, Second> = BTreeMap::new();
    let mut merged = Timeline::default();
    for ((name, run), (start, _)) in runs.iter().zip(&intervals) {
        let shift = clock.place(*start);
        for second in &run.timeline.seconds {
            // Windows end a whole second after their run's start: on the merged
            // clock, the nearest whole second names the window they share.
            let at = (second.at + shift).round().max(1.0);
            let sum = seconds.entry(at as u64).or_default();
            add_second(sum, second, at).map_err(|what| {
                format!("{name}: its timeline's {what} at {at} s, added to the other runs', pass what 64 bits can count")
            })?;
        }
        if let Some(steady) = run.timeline.steady_at.map(|t| t + shift) {
            merged.steady_at = Some(merged.steady_at.map_or(steady, |s| s.max(steady)));
        }
        if let Some(drain) = run.timeline.drain_at.map(|t| t + shift) {
            merged.drain_at = Some(merged.drain_at.map_or(drain, |d| d.min(drain)));
        }
        merged.end_at = merged.end_at.max(run.timeline.end_at + shift);
    }
    merged.seconds = seconds.into_values().take(MAX_SECONDS_KEPT).collect();
    Ok((merged, clock.gaps))
}

/// The merged clock: wall-clock time with the gaps between the runs cut out.
struct Clock {
    /// The union of the runs' intervals: (start on the wall clock, start on
    /// the merged clock), in order.
    segments: Vec<(f64, f64)>,
    /// Seconds cut out between the segments.
    gaps: f64,
}

impl Clock {
    /// The clock for runs over `intervals` (start, end) of the wall clock.
    fn new(intervals: &[(f64, f64)]) -> Clock {
        let mut sorted = intervals.to_vec();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut segments = Vec::new();
        let (mut covered_to, mut merged_len, mut gaps) = (f64::MIN, 0.0, 0.0);
        for (start, end) in sorted {
            if segments.is_empty() || start > covered_to {
                if !segments.is_empty() {
                    gaps += start - covered_to;
                }
                segments.push((start, merged_len));
                covered_to = start;
            }
            if end > covered_to {
                merged_len += end - covered_to;
                covered_to = end;
            }
        }
        Clock { segments, gaps }
    }

    /// Where the wall-clock moment `t`, the start of a run, falls on the merged clock.
    fn place(&self, t: f64) -> f64 {
        let i = self.segments.partition_point(|(start, _)| *start <= t);
        let (start, at) = self.segments[i.saturating_sub(1)];
        at + (t - start)
    }
}

/// Add one run's window to the merged second ending at `at`; the name of the
/// count that would overflow, if one would.
fn add_second(sum: &mut Second, one: &Second, at: f64) -> Result<(), &'static str> {
    let add = |a: u64, b: u64, what| a.checked_add(b).ok_or(what);
    sum.messages = add(sum.messages, one.messages, "messages")?;
    sum.bytes_sent = add(sum.bytes_sent, one.bytes_sent, "bytes_sent")?;
    sum.bytes_received = add(sum.bytes_received, one.bytes_received, "bytes_received")?;
    sum.open = add(sum.open, one.open, "open connections")?;
    sum.errors = add(sum.errors, one.errors, "errors")?;
    sum.at = at;
    sum.secs = sum.secs.max(one.secs);
    sum.p50_us = sum.p50_us.max(one.p50_us);
    sum.p99_us = sum.p99_us.max(one.p99_us);
    sum.max_us = sum.max_us.max(one.max_us);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gaps_between_runs_are_cut_out_of_the_clock() {
        // Two runs of 10 s side by side, then one of 5 s a year later.
        let year = 365.0 * 86_400.0;
        let clock = Clock::new(&[(100.0, 110.0), (100.5, 110.5), (100.0 + year, 105.0 + year)]);
        assert_eq!(clock.place(100.0), 0.0);
        assert_eq!(clock.place(100.5), 0.5);
        assert_eq!(clock.place(100.0 + year), 10.5);
        assert!((clock.gaps - (year - 10.5)).abs() < 1e-6, "{}", clock.gaps);
    }
}
