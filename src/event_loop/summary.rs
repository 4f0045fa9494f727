//! What a loop did, in one line at exit: `served 3 connections, echoed 138 bytes`.

use super::admission::Refusals;
#[cfg(doc)]
use super::Service;
use crate::units::{grouped, plural};

/// What a loop did, for the one-line summary at exit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// What the service calls moving bytes (`echoed`), from [`Service::VERB`].
    pub verb: &'static str,
    /// Connections accepted and served.
    pub served: u64,
    /// Bytes the connections delivered (echoed, relayed).
    pub moved: u64,
    /// Closed at accept, by reason.
    pub refused: Refusals,
    /// Closed for `--idle-timeout`.
    pub idle_closed: u64,
    /// Stopped at once (a second signal) instead of finishing.
    pub forced: bool,
}

impl Summary {
    /// Add another loop's summary to this one.
    pub fn add(&mut self, other: &Summary) {
        self.served += other.served;
        self.moved += other.moved;
        self.refused.add(&other.refused);
        self.idle_closed += other.idle_closed;
        self.forced |= other.forced;
    }

    /// `served 3 connections, echoed 138 bytes; refused 1 not in --allow`.
    pub fn line(&self) -> String {
        let idle = if self.idle_closed > 0 {
            format!("; {} closed idle", grouped(self.idle_closed))
        } else {
            String::new()
        };
        format!(
            "served {}, {} {}{}{idle}",
            plural(self.served, "connection"),
            self.verb,
            plural(self.moved, "byte"),
            self.refused.summary()
        )
    }
}
