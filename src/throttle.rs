//! Log a repeated warning at most once a second.
//!
//! A flood of refused connections (connection limit, out of descriptors, not
//! allowed) would otherwise write a log line per connection and make the log,
//! not the sockets, the bottleneck. The first occurrence is logged at once;
//! the rest of that second are counted and reported with the next line.

use std::time::{Duration, Instant};

/// How often a throttled message may be logged.
const INTERVAL: Duration = Duration::from_secs(1);

/// One throttled message's state.
#[derive(Default)]
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

/// ` (and N more in the last second)` or nothing, for the end of a throttled line.
pub fn more(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" (and {suppressed} more since the last such line)")
    }
}
