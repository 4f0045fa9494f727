//! Connections that wait for memory while their TCP has stopped: they read
//! their socket empty, so that the client's acknowledgements get in again.
//!
//! **Why this is needed.** A connection that owes its client bytes stops
//! reading while `--max-pending-total` is spent (`memory.rs`), and waits for a
//! connection ahead of it to drain. Normally it drains too: the client reads,
//! its kernel advertises an open window, ours sends. But when the kernel's TCP
//! memory runs short (`net.ipv4.tcp_mem`: hundreds of clients each with
//! megabytes queued both ways), our kernel drops some of the client's
//! segments (`nstat`'s `TcpExtTCPRcvQDrop`). The client retransmits them, a
//! whole 64 KiB segment at a time on loopback, into a receive window that is
//! nearly closed because we do not read. Linux (6.17 on) takes a segment that
//! reaches past the window only into an empty receive queue; ours is not
//! empty, so it rejects each retransmission (`TcpExtBeyondWindow`), and with
//! it the acknowledgement it carries, window update and all. Our kernel goes
//! on believing the client has no room and sends nothing; the client, which
//! read everything, waits for bytes; we wait for room. Seen on Linux 6.18:
//! with `--max-pending-total 1`, 300 clients echoing 16 MiB each, one to seven
//! froze for good in every run.
//!
//! **What the loop does.** While connections wait for room, it looks at them
//! every [`LOOK_EVERY`]. One that wrote nothing since the last look gets a
//! turn with the budget opened by what its receive queue holds
//! ([`Budget::grant`](super::memory::Budget::grant)): it reads the queue
//! empty, the client's next retransmission is taken, and with it the window
//! update. The client's TCP has backed off by then, so recovering takes up to
//! its retransmission timer's time (seconds; two minutes at worst): a tiny
//! total costs time, never a frozen client.
//!
//! **The bound.** This is the one place the loop lets a connection past
//! `--max-pending-total`, by what its receive queue holds (`tcp_rmem` bounds
//! it; a window that stayed closed keeps it near the 128 KiB default), and
//! only `--max-pending` bounds the connection then. Those bytes were the
//! kernel's already, and reading them frees the kernel's copy (a cgroup counts
//! both). A connection gets one such turn per stall, and another only after it
//! has written since: a client that never reads gets one.

use std::time::{Duration, Instant};

use log::{debug, info};

use super::{EventLoop, Handler, Readiness, Service};
use crate::units::plural;

/// How often connections waiting for room are looked at: a stall shows as a
/// look that finds one with nothing written since the last.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What the last looks saw of the connections waiting for room.
#[derive(Debug)]
pub struct Stalls {
    /// When the next look is due; `None` while nobody waits for room.
    next_look: Option<Instant>,
    /// Looks made so far.
    looks: u64,
    /// `seen[key]`: what the looks saw of slot `key`. Sized once, like every
    /// table indexed by connection.
    seen: Vec<Seen>,
}

/// What the looks saw of one slot.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// The last look that saw it waiting.
    look: u64,
    /// The bytes it had written then.
    written: u64,
    /// What it had written when it last read past the budget: it gets no
    /// other such turn until it has written more, so a client that never
    /// reads gets one.
    granted_at: Option<u64>,
}

impl Stalls {
    /// Nothing seen yet, for at most `connections` connections.
    pub fn new(connections: usize) -> Stalls {
        let never = Seen { look: u64::MAX, written: 0, granted_at: None };
        Stalls { next_look: None, looks: 0, seen: vec![never; connections] }
    }

    /// When the next look is due, if any: a timer for `poll`.
    pub fn next_look(&self) -> Option<Instant> {
        self.next_look
    }

    /// Start the clock when connections begin to wait for room; stop it when
    /// none do. True when a look is due at `now`.
    fn due(&mut self, now: Instant, waiting: usize) -> bool {
        match self.next_look {
            _ if waiting == 0 => self.next_look = None,
            None => self.next_look = Some(now + LOOK_EVERY),
            Some(at) if at <= now => {
                self.next_look = Some(now + LOOK_EVERY);
                self.looks += 1;
                return true;
            }
            Some(_) => {}
        }
        false
    }

    /// Whether slot `key`, waiting now with `written` bytes written, is
    /// stalled: waiting at the last look too, with the same count, and not
    /// given a turn past the budget since it last wrote. If so, that turn is
    /// taken to be given.
    fn stalled(&mut self, key: usize, written: u64) -> bool {
        let Some(seen) = self.seen.get_mut(key) else { return false };
        if seen.look != self.looks.wrapping_sub(1) {
            seen.granted_at = None; // not waiting at the last look: a new stall
        }
        let stalled = seen.look == self.looks.wrapping_sub(1)
            && seen.written == written
            && seen.granted_at != Some(written);
        seen.look = self.looks;
        seen.written = written;
        if stalled {
            seen.granted_at = Some(written);
        }
        stalled
    }
}

impl<S: Service> EventLoop<S> {
    /// If a look is due, give each connection waiting for room that wrote
    /// nothing since the last one a turn to read its socket's queue empty.
    pub(super) fn look_for_stalls(&mut self, now: Instant) {
        if !self.stalls.due(now, self.budget.waiting()) {
            return;
        }
        let mut granted = 0u64;
        // A granted turn only re-lists its own connection, already listed:
        // the list does not change under this walk.
        for i in 0..self.budget.waiting() {
            let Some(key) = self.budget.waiting_key(i) else { break };
            let Some(entry) = self.connections.get(key) else { continue };
            if !self.stalls.stalled(key, entry.handler.wire().written) {
                continue;
            }
            // A socket that cannot say is left to its idle timeout.
            let Ok(queued) = entry.handler.in_flight() else { continue };
            debug!(
                target: S::LOG,
                "{}: waited for memory and wrote nothing for {LOOK_EVERY:?}: reading its {} queued bytes",
                self.name_key(key),
                queued.unread
            );
            self.budget.grant(queued.unread as usize);
            self.turn(key, Readiness::AGAIN, Some(now));
            self.budget.end_grant();
            granted += 1;
        }
        if granted > 0 && self.summary.stall_reads == 0 {
            info!(
                target: S::LOG,
                "{} waiting for memory wrote nothing for {LOOK_EVERY:?}: each reads what its socket \
                 holds past --max-pending-total, so that its client's TCP moves again (counted in the summary)",
                plural(granted, "connection")
            );
        }
        self.summary.stall_reads += granted;
    }
}

#[cfg(test)]
mod tests {
    use super::super::memory::Budget;
    use super::*;

    #[test]
    fn a_stall_is_two_looks_with_the_same_count_and_gets_one_turn() {
        let start = Instant::now();
        let mut s = Stalls::new(4);
        let look = |s: &mut Stalls, n: u32| assert!(s.due(start + n * LOOK_EVERY, 1));
        assert!(!s.due(start, 1), "the first waiter starts the clock");
        assert!(!s.due(start + LOOK_EVERY / 2, 1));
        look(&mut s, 1);
        assert!(!s.stalled(2, 500), "first seen now");
        look(&mut s, 2);
        assert!(s.stalled(2, 500), "nothing written since");
        look(&mut s, 3);
        assert!(!s.stalled(2, 500), "one turn per stall");
        look(&mut s, 4);
        assert!(!s.stalled(2, 600), "it wrote");
        look(&mut s, 5);
        assert!(s.stalled(2, 600), "and stalled again");
        look(&mut s, 7);
        assert!(!s.stalled(2, 600), "not waiting at look 6: seen anew");
        assert!(!s.stalled(9, 0), "beyond the table: never a panic");
        assert!(!s.due(start + 9 * LOOK_EVERY, 0), "nobody waits: the clock stops");
        assert_eq!(s.next_look(), None);
    }

    #[test]
    fn a_grant_opens_the_budget_by_that_much_whatever_it_holds() {
        let mut b = Budget::new(10, 4);
        b.charge(50);
        b.grant(64);
        assert!(!b.spent());
        assert_eq!(b.room(), 64);
        b.charge(64);
        assert!(b.spent());
        b.end_grant();
        assert!(b.spent());
        assert_eq!(b.room(), 0);
    }
}
