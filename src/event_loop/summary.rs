//! What a loop did, in one line at exit: `served 3 connections, echoed 138 bytes`.

use super::admission::Refusals;
use super::Closed;
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
    /// Closed because their TLS handshake took longer than `--handshake-timeout`.
    pub handshake_timeouts: u64,
    /// Closed because their TLS failed (not TLS, a bad hello, nothing in common).
    pub tls_failed: u64,
    /// Turns in which a connection whose TCP stopped while it waited for
    /// memory read its socket empty past `--max-pending-total` (`stall.rs`).
    pub stall_reads: u64,
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
        self.handshake_timeouts += other.handshake_timeouts;
        self.tls_failed += other.tls_failed;
        self.stall_reads += other.stall_reads;
        self.forced |= other.forced;
    }

    /// A connection closed for `why`: count the reasons the line names.
    pub fn count_close(&mut self, why: Closed) {
        match why {
            Closed::HandshakeTimeout => self.handshake_timeouts += 1,
            Closed::Tls(_) => self.tls_failed += 1,
            _ => {}
        }
    }

    /// `served 3 connections, echoed 138 bytes; refused 1 not in --allow`.
    pub fn line(&self) -> String {
        let mut closed = String::new();
        if self.idle_closed > 0 {
            closed += &format!("; {} closed idle", grouped(self.idle_closed));
        }
        if self.handshake_timeouts > 0 {
            let n = plural(self.handshake_timeouts, "TLS handshake");
            closed += &format!("; {n} not finished in time");
        }
        if self.tls_failed > 0 {
            closed += &format!("; {} closed on a TLS error", grouped(self.tls_failed));
        }
        if self.stall_reads > 0 {
            let n = plural(self.stall_reads, "time");
            closed += &format!("; stalled connections read past --max-pending-total {n}");
        }
        format!(
            "served {}, {} {}{}{closed}",
            plural(self.served, "connection"),
            self.verb,
            plural(self.moved, "byte"),
            self.refused.summary()
        )
    }
}
