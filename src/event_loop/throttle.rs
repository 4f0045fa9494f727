//! Keep the log short under a flood: warnings at most once a second, and
//! per-connection lines at most [`LINES_PER_SECOND`] a second.
//!
//! A flood of refused connections (connection limit, out of descriptors, not
//! allowed) or a client churning connections would otherwise write a line per
//! connection and make the log, not the sockets, the bottleneck. What is not
//! printed is counted, and the count is printed instead, so the log still adds
//! up to every connection.

use std::fmt;
use std::time::{Duration, Instant};

use crate::units::grouped;

/// How often a throttled message may be logged, and the window of [`LineQuota`].
const INTERVAL: Duration = Duration::from_secs(1);

/// Per-connection lines printed in one second before the rest are only counted:
/// enough to follow a lab by eye, few enough that churn cannot flood the log.
pub const LINES_PER_SECOND: u32 = 100;

/// One throttled message's state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// Count an occurrence; `Some(n)` when it should be logged now, `n` being
    /// how many occurrences were kept quiet since the last line.
    pub fn hit(&mut self) -> Option<u64> {
        self.hit_n(1)
    }

    /// Count `count` occurrences at once (a batch, e.g. connections closed in
    /// one go); `Some(n)` when the batch should be logged now, `n` being how
    /// many occurrences were kept quiet since the last line.
    pub fn hit_n(&mut self, count: u64) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < INTERVAL => {
                self.suppressed += count;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// ` (and N more since the last such line)` or nothing, for the end of a throttled line.
pub fn more(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" (and {} more since the last such line)", grouped(suppressed))
    }
}

/// Which per-connection line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// `connection from ...`
    Opened,
    /// `closing connection from ...`
    Closed,
    /// A service's own line about one connection (the relay's `received data
    /// from client b'...'`, or its target refusing), asked for through a
    /// handler's [`super::Turn::lines`].
    Detail,
}

/// The per-connection lines of one-second windows: the first
/// [`LINES_PER_SECOND`] of a window are printed, the rest counted and reported
/// as one [`Quiet`] line when the window ends.
#[derive(Debug, Default)]
pub struct LineQuota {
    /// When the current window began; `None` between windows.
    window: Option<Instant>,
    printed: u32,
    quiet: Quiet,
}

impl LineQuota {
    /// A per-connection line is due at `now`: `true` if it may be printed.
    /// Call [`LineQuota::end_window`] first, so a past window is reported
    /// before this line.
    pub fn allow(&mut self, now: Instant, line: Line) -> bool {
        let window = *self.window.get_or_insert(now);
        // A window that is over with nothing left unprinted has nothing to
        // report: a new one begins here. (One with lines left unprinted is
        // due, and the loop's timers end it and report them.)
        if self.quiet.is_empty() && now.saturating_duration_since(window) >= INTERVAL {
            self.window = Some(now);
            self.printed = 0;
        }
        if self.printed < LINES_PER_SECOND {
            self.printed += 1;
            return true;
        }
        match line {
            Line::Opened => self.quiet.opened += 1,
            Line::Closed => self.quiet.closed += 1,
            Line::Detail => self.quiet.details += 1,
        }
        false
    }

    /// When the window with unprinted lines ends, for the loop's timers.
    pub fn due(&self) -> Option<Instant> {
        let window = self.window?;
        (!self.quiet.is_empty()).then_some(window + INTERVAL)
    }

    /// If the window is over at `now`, close it; returns its unprinted lines
    /// when there were any.
    pub fn end_window(&mut self, now: Instant) -> Option<Quiet> {
        let over = self.window.is_some_and(|w| now.saturating_duration_since(w) >= INTERVAL);
        if over {
            self.finish()
        } else {
            None
        }
    }

    /// Close the window now (the server is stopping): its unprinted lines, if any.
    pub fn finish(&mut self) -> Option<Quiet> {
        self.window = None;
        self.printed = 0;
        let quiet = std::mem::take(&mut self.quiet);
        (!quiet.is_empty()).then_some(quiet)
    }
}

/// Per-connection lines counted instead of printed in one window.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Quiet {
    /// `connection from` lines.
    pub opened: u64,
    /// `closing connection from` lines.
    pub closed: u64,
    /// A service's own lines about connections ([`Line::Detail`]).
    pub details: u64,
}

impl Quiet {
    fn is_empty(&self) -> bool {
        self.opened == 0 && self.closed == 0 && self.details == 0
    }
}

impl fmt::Display for Quiet {
    /// `... and 7,640 more connections opened and 7,638 closed in the last
    /// second`, or with a service's own lines: `... and 3 more connections
    /// opened and 812 more lines about them in the last second`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let connections = match (self.opened, self.closed) {
            (0, 0) => None,
            (o, 0) => Some(format!("{} {} opened", grouped(o), noun(o))),
            (0, c) => Some(format!("{} {} closed", grouped(c), noun(c))),
            (o, c) => Some(format!("{} {} opened and {} closed", grouped(o), noun(o), grouped(c))),
        };
        let lines = if self.details == 1 { "line" } else { "lines" };
        let details = grouped(self.details);
        let what = match connections {
            Some(c) if self.details > 0 => format!("{c} and {details} more {lines} about them"),
            Some(c) => c,
            None => format!("{details} more {lines} about connections"),
        };
        write!(f, "... and {what} in the last second")
    }
}

fn noun(n: u64) -> &'static str {
    if n == 1 {
        "more connection"
    } else {
        "more connections"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_words() {
        let both = Quiet { opened: 7640, closed: 7638, details: 0 };
        assert_eq!(
            both.to_string(),
            "... and 7,640 more connections opened and 7,638 closed in the last second"
        );
        let one = Quiet { opened: 0, closed: 1, details: 0 };
        assert_eq!(one.to_string(), "... and 1 more connection closed in the last second");
        let details = Quiet { opened: 3, closed: 0, details: 812 };
        assert_eq!(
            details.to_string(),
            "... and 3 more connections opened and 812 more lines about them in the last second"
        );
        let only = Quiet { opened: 0, closed: 0, details: 1 };
        assert_eq!(only.to_string(), "... and 1 more line about connections in the last second");
    }

    #[test]
    fn a_window_prints_its_budget_and_counts_the_rest() {
        let start = Instant::now();
        let mut budget = LineQuota::default();
        for i in 0..LINES_PER_SECOND + 30 {
            let line = if i % 2 == 0 { Line::Opened } else { Line::Closed };
            assert_eq!(budget.end_window(start), None);
            assert_eq!(budget.allow(start, line), i < LINES_PER_SECOND);
        }
        assert_eq!(budget.due(), Some(start + INTERVAL));
        assert_eq!(budget.end_window(start + INTERVAL / 2), None);
        let later = start + INTERVAL;
        assert_eq!(budget.end_window(later), Some(Quiet { opened: 15, closed: 15, details: 0 }));
        assert_eq!(budget.due(), None);
        assert!(budget.allow(later, Line::Opened), "a new window prints again");
        assert_eq!(budget.finish(), None);
    }

    #[test]
    fn a_window_with_nothing_quiet_rolls_over_without_end_window() {
        // A handler asks through `allow` alone: a full window that left
        // nothing unprinted must not keep later windows quiet.
        let start = Instant::now();
        let mut quota = LineQuota::default();
        for _ in 0..LINES_PER_SECOND {
            assert!(quota.allow(start, Line::Detail));
        }
        let later = start + INTERVAL;
        assert!(quota.allow(later, Line::Detail), "a second later, lines print again");
        assert_eq!(quota.due(), None);
        // Lines left unprinted are reported first: until the loop ends that
        // window (its timers), the rest are counted in it.
        for _ in 1..=LINES_PER_SECOND {
            quota.allow(later, Line::Detail);
        }
        let after = later + INTERVAL;
        assert!(!quota.allow(after, Line::Detail));
        assert_eq!(quota.end_window(after), Some(Quiet { opened: 0, closed: 0, details: 2 }));
    }
}
