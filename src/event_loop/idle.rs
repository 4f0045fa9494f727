//! `--idle-timeout`: find the connections that have been silent too long, cheaply.
//!
//! Every connection has the same timeout, so the one silent longest is always
//! the next to expire. A doubly linked list in order of last activity gives
//! that one in O(1): activity moves a connection to the back (O(1)), the loop
//! looks only at the front, and the poll timeout is the front's deadline. No
//! scan of all connections, no heap, no timer per connection: the same idea as
//! an LRU cache. The links live in a `Vec` indexed by the connection's slab key,
//! sized once for every key, so the list never allocates while serving.
//!
//! The same list keeps the connections that are not set up yet (a TLS
//! handshake, bounded by `--handshake-timeout`): each is touched once, when
//! it is accepted, and removed when it is set up, so the front is always the
//! oldest handshake and the loop looks at nothing else.
//!
//! **Idle means the client neither sent nor accepted a byte for the whole
//! timeout**, not merely that the loop saw no event. The loop can miss both:
//! after a stall (a debugger, a swap storm) the clients' bytes wait unread in
//! the kernel, and a client reading slowly frees room in our send buffer for
//! seconds before the kernel calls that an event. So when a connection's time
//! is up, the server asks the kernel what is in flight ([`InFlight`]) and
//! [`IdleList::expire`] decides: something moved since the last look, or this
//! is the first look and something is on its way: not idle, look again after
//! another timeout. The price is a few syscalls per expiring connection, none
//! per event; a client that stops reading with bytes still on their way is
//! closed after one to two timeouts, one with nothing in flight on time.

use std::time::{Duration, Instant};

/// "No neighbour". Slab keys stay far below `u32::MAX` (connections are capped
/// by the open-file limit), and `u32` links keep each entry small.
const NIL: u32 = u32::MAX;

/// What is on its way between a client and the server when its timer runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// Bytes the client sent that the server has not read (`FIONREAD`).
    pub unread: u32,
    /// Bytes the server sent that the client has not acknowledged (`SIOCOUTQ`).
    pub unacked: u32,
    /// Whether the server still holds bytes owed to the client.
    pub owed: bool,
}

impl InFlight {
    fn any(self) -> bool {
        self.unread > 0 || self.unacked > 0 || self.owed
    }
}

#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    last_active: Instant,
    linked: bool,
    /// What was in flight when the timer last ran out; `None` once an event
    /// has shown activity since.
    mark: Option<InFlight>,
}

/// Connections in order of last activity: the front is the longest silent.
#[derive(Debug)]
pub struct IdleList {
    timeout: Duration,
    links: Vec<Link>,
    front: u32,
    back: u32,
}

impl IdleList {
    /// An empty list for connections that expire after `timeout` of silence,
    /// with room for keys below `keys` reserved now.
    pub fn new(timeout: Duration, keys: usize) -> IdleList {
        IdleList { timeout, links: Vec::with_capacity(keys), front: NIL, back: NIL }
    }

    /// `key` was active at `now`: move it to the back.
    pub fn touch(&mut self, key: usize, now: Instant) {
        let Ok(k) = u32::try_from(key) else { return };
        if key >= self.links.len() {
            let blank = Link { prev: NIL, next: NIL, last_active: now, linked: false, mark: None };
            self.links.resize(key + 1, blank);
        }
        self.remove(key);
        let link = &mut self.links[key];
        link.last_active = now;
        link.linked = true;
        link.mark = None;
        link.prev = self.back;
        link.next = NIL;
        match self.back {
            NIL => self.front = k,
            back => self.links[back as usize].next = k,
        }
        self.back = k;
    }

    /// `key` closed: forget it.
    pub fn remove(&mut self, key: usize) {
        let Some(&Link { prev, next, linked: true, .. }) = self.links.get(key) else { return };
        match prev {
            NIL => self.front = next,
            p => self.links[p as usize].next = next,
        }
        match next {
            NIL => self.back = prev,
            n => self.links[n as usize].prev = prev,
        }
        self.links[key].linked = false;
    }

    /// When the longest-silent connection expires, if there is one.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.front {
            NIL => None,
            f => Some(self.links[f as usize].last_active + self.timeout),
        }
    }

    /// The key of a connection silent for the whole timeout at `now`, if any.
    pub fn expired(&self, now: Instant) -> Option<usize> {
        self.next_deadline().filter(|&d| d <= now).map(|_| self.front as usize)
    }

    /// `key`'s time is up and `seen` is what the kernel says is in flight:
    /// true if it is idle (close it); false if bytes moved, or this is the
    /// first look and some are on their way, and it is given another timeout.
    pub fn expire(&mut self, key: usize, now: Instant, seen: InFlight) -> bool {
        let Some(link) = self.links.get(key) else { return true };
        let moved = match link.mark {
            Some(before) => before != seen,
            None => seen.any(),
        };
        if moved {
            self.touch(key, now);
            self.links[key].mark = Some(seen);
        }
        !moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_first_and_touch_moves_to_back() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut l = IdleList::new(s, 8);
        l.touch(3, t0);
        l.touch(1, t0 + s);
        l.touch(7, t0 + 2 * s);
        assert_eq!(l.next_deadline(), Some(t0 + s));
        assert_eq!(l.expired(t0 + s), Some(3));
        l.touch(3, t0 + 3 * s);
        assert_eq!(l.expired(t0 + 2 * s), Some(1));
        l.remove(1);
        assert_eq!(l.expired(t0 + 3 * s), Some(7));
        l.remove(7);
        l.remove(7);
        assert_eq!(l.expired(t0 + 3 * s), None);
        assert_eq!(l.next_deadline(), Some(t0 + 4 * s));
        l.remove(3);
        assert_eq!(l.next_deadline(), None);
    }

    #[test]
    fn bytes_in_flight_buy_another_timeout_only_while_they_move() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut l = IdleList::new(s, 8);
        let quiet = InFlight { unread: 0, unacked: 0, owed: false };
        let sending = InFlight { unread: 5, ..quiet };
        l.touch(1, t0);
        l.touch(2, t0);
        assert!(l.expire(1, t0 + s, quiet), "nothing in flight: idle on time");
        l.remove(1);
        assert!(!l.expire(2, t0 + s, sending), "first look, bytes waiting: not idle");
        assert_eq!(l.next_deadline(), Some(t0 + 2 * s));
        assert!(!l.expire(2, t0 + 2 * s, InFlight { unread: 9, ..quiet }), "more came");
        assert!(l.expire(2, t0 + 3 * s, InFlight { unread: 9, ..quiet }), "nothing moved");
        l.touch(2, t0 + 3 * s);
        assert!(l.expire(2, t0 + 4 * s, quiet), "an event clears the mark");
    }
}
