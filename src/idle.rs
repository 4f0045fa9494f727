//! `--idle-timeout`: find the connections that have been silent too long, cheaply.
//!
//! Every connection has the same timeout, so the one silent longest is always
//! the next to expire. A doubly linked list in order of last activity gives
//! that one in O(1): activity moves a connection to the back (O(1)), the loop
//! looks only at the front, and the poll timeout is the front's deadline. No
//! scan of all connections, no heap, no timer per connection: the same idea as
//! an LRU cache. The links live in a `Vec` indexed by the connection's slab key,
//! so the list needs no allocation per event.

use std::time::{Duration, Instant};

/// "No neighbour". Slab keys stay far below `u32::MAX` (connections are capped
/// by the open-file limit), and `u32` links keep each entry small.
const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    last_active: Instant,
    linked: bool,
}

/// Connections in order of last activity: the front is the longest silent.
pub struct IdleList {
    timeout: Duration,
    links: Vec<Link>,
    front: u32,
    back: u32,
}

impl IdleList {
    /// An empty list for connections that expire after `timeout` of silence.
    pub fn new(timeout: Duration) -> IdleList {
        IdleList { timeout, links: Vec::new(), front: NIL, back: NIL }
    }

    /// `key` was active at `now`: move it to the back.
    pub fn touch(&mut self, key: usize, now: Instant) {
        let Ok(k) = u32::try_from(key) else { return };
        if key >= self.links.len() {
            let blank = Link { prev: NIL, next: NIL, last_active: now, linked: false };
            self.links.resize(key + 1, blank);
        }
        self.remove(key);
        let link = &mut self.links[key];
        link.last_active = now;
        link.linked = true;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_first_and_touch_moves_to_back() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut l = IdleList::new(s);
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
}
