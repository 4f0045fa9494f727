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
//! empty, its window opens, and the client's next retransmission, then its
//! next acknowledgement, get in. That may take more than one such turn (the
//! retransmission fills the hole, and what the kernel held after it comes in
//! at once), so a connection that goes on writing nothing gets another after
//! 2, 4, 8... looks. The client's TCP has backed off by then, so recovering
//! takes up to its retransmission timer's time (seconds; two minutes at
//! worst): a tiny total costs time, never a frozen client.
//!
//! **The bound.** This is the one place the loop lets a connection past
//! `--max-pending-total`, by what its receive queue holds (`tcp_rmem` bounds
//! it; a window that stayed closed keeps it near the 128 KiB default), and
//! only `--max-pending` bounds the connection then. Those bytes were the
//! kernel's already, and reading them frees the kernel's copy (a cgroup counts
//! both). The backoff keeps it rare: a client that never reads has its queue
//! read 2, 4, 8... seconds apart, ten times in its first 17 minutes, then
//! once every 17 minutes.

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
    /// Which connection: when it was accepted (a slot is reused).
    opened: Option<Instant>,
    /// The last look that saw it waiting.
    look: u64,
    /// The bytes it had written then.
    written: u64,
    /// Turns past the budget since it last wrote.
    streak: u32,
    /// The first look at which it may have another.
    next_turn: u64,
}

/// The most looks between two turns past the budget of a connection that
/// writes nothing (2^10 s, 17 min): a client that never reads gets one turn
/// every 17 minutes once it has had ten.
const MAX_BACKOFF: u32 = 10;

impl Stalls {
    /// Nothing seen yet, for at most `connections` connections.
    pub fn new(connections: usize) -> Stalls {
        let never = Seen { opened: None, look: u64::MAX, written: 0, streak: 0, next_turn: 0 };
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

    /// Whether the connection in slot `key`, accepted at `opened` and waiting
    /// now with `written` bytes written, is stalled and due a turn past the
    /// budget: waiting at the last look too with the same count, and its
    /// backoff over. If so, the turn is taken to be given: while it goes on
    /// writing nothing, the next comes after 2, 4, 8... looks.
    fn stalled(&mut self, key: usize, opened: Instant, written: u64) -> bool {
        let Some(seen) = self.seen.get_mut(key) else { return false };
        if seen.opened != Some(opened) {
            let fresh =
                Seen { opened: Some(opened), look: self.looks, written, streak: 0, next_turn: 0 };
            *seen = fresh;
            return false;
        }
        if seen.written != written {
            // It wrote: a stall from now on is a new one.
            (seen.streak, seen.next_turn) = (0, 0);
        }
        let stalled = seen.look == self.looks.wrapping_sub(1)
            && seen.written == written
            && self.looks >= seen.next_turn;
        seen.look = self.looks;
        seen.written = written;
        if stalled {
            seen.streak += 1;
            seen.next_turn = self.looks + (1 << seen.streak.min(MAX_BACKOFF));
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
            if !self.stalls.stalled(key, entry.opened, entry.handler.wire().written) {
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
    fn a_stall_is_two_looks_with_the_same_count_and_its_turns_back_off() {
        let start = Instant::now();
        let (one, other) = (start, start + LOOK_EVERY / 4);
        let mut s = Stalls::new(4);
        let mut looks = 0;
        let mut look = |s: &mut Stalls| {
            looks += 1;
            assert!(s.due(start + looks * LOOK_EVERY, 1));
        };
        assert!(!s.due(start, 1), "the first waiter starts the clock");
        assert!(!s.due(start + LOOK_EVERY / 2, 1));
        look(&mut s);
        assert!(!s.stalled(2, one, 500), "first seen now");
        // Writing nothing, it gets turns at looks 2, 4, 8 and 16.
        let mut turns = Vec::new();
        for at in 2..=16 {
            look(&mut s);
            if s.stalled(2, one, 500) {
                turns.push(at);
            }
        }
        assert_eq!(turns, [2, 4, 8, 16]);
        look(&mut s);
        assert!(!s.stalled(2, one, 600), "it wrote");
        look(&mut s);
        assert!(s.stalled(2, one, 600), "stalled again: the backoff starts over");
        look(&mut s);
        assert!(!s.stalled(2, one, 600));
        look(&mut s); // slot 2 got room and is not waiting
        look(&mut s);
        assert!(!s.stalled(2, one, 600), "waiting again: seen now");
        look(&mut s);
        assert!(s.stalled(2, one, 600));
        look(&mut s);
        assert!(!s.stalled(2, other, 600), "another connection in the slot: seen anew");
        look(&mut s);
        assert!(s.stalled(2, other, 600));
        assert!(!s.stalled(9, one, 0), "beyond the table: never a panic");
        assert!(!s.due(start + 99 * LOOK_EVERY, 0), "nobody waits: the clock stops");
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
