//! The first reading of a recording: every connection added up, the busiest kept.
//!
//! While a connection is open it is a few numbers (a [`Lane`]); when it ends
//! it either joins the [`ROWS`] busiest so far (by bytes read and written
//! back) or is added to the rest, which the page shows as one line. Memory
//! grows with the connections open at once, never with the file's length or
//! with how many connections came and went.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use super::format::READ;
use super::read::{Reading, Turn, Visit};

/// Connections listed in the page's table: the busiest.
pub const ROWS: usize = 100;
/// Connections drawn as lanes: the busiest of those listed.
pub const DRAWN: usize = 16;

/// One connection's life as the loop saw it, in numbers.
#[derive(Debug, Clone, Default)]
pub struct Lane {
    /// Its number: the order in which it was first seen, from 0.
    pub lane: u64,
    /// Its slab key (token); keys are reused after a close, lanes are not.
    pub key: usize,
    /// When it was accepted, µs.
    pub opened: u64,
    /// When it was closed, µs (`None`: open at the end, or its close lost).
    pub closed: Option<u64>,
    /// Turns the loop gave it.
    pub turns: u64,
    /// Bytes read (saturating: the numbers come from a file).
    pub read: u64,
    /// Bytes written back.
    pub written: u64,
    /// The most it owed after any turn.
    pub max_owed: u64,
    /// Times its reading was paused and resumed (backpressure).
    pub pauses: u64,
    /// The longest such pause, µs.
    pub longest_pause: u64,
    /// When its last TLS handshake turn was, µs: the handshake took from
    /// `opened` to then (`None`: no handshake, a plaintext connection).
    pub handshake_done: Option<u64>,
    /// Since when its reading is paused, if it is.
    paused_since: Option<u64>,
}

impl Lane {
    /// Bytes moved either way: what "busiest" means.
    pub fn busy(&self) -> u64 {
        self.read.saturating_add(self.written)
    }
}

/// Sums over connections.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    /// How many.
    pub connections: u64,
    /// Bytes read.
    pub read: u64,
    /// Bytes written back.
    pub written: u64,
    /// Times reading was paused.
    pub pauses: u64,
}

impl Totals {
    fn add(&mut self, lane: &Lane) {
        self.connections += 1;
        self.read = self.read.saturating_add(lane.read);
        self.written = self.written.saturating_add(lane.written);
        self.pauses = self.pauses.saturating_add(lane.pauses);
    }
}

/// The connections a page shows: the table's rows, the lanes drawn, the rest.
#[derive(Debug, Default)]
pub struct Lanes {
    /// The busiest [`ROWS`], in the order they were first seen.
    pub rows: Vec<Lane>,
    /// The lane numbers of the busiest [`DRAWN`] of them, in order.
    pub drawn: Vec<u64>,
    /// Every connection not in `rows`, added up.
    pub rest: Totals,
    /// Every connection, added up.
    pub all: Totals,
}

/// The first reading's [`Visit`]: see the top of this file.
#[derive(Debug, Default)]
pub struct Census {
    now: u64,
    open: HashMap<u64, Lane>,
    /// The busiest finished connections, the least busy on top.
    busiest: BinaryHeap<Reverse<Ranked>>,
    rest: Totals,
    all: Totals,
}

/// A lane ordered by how busy it was; of two as busy, the earlier ranks higher.
#[derive(Debug)]
struct Ranked(Lane);

impl Ranked {
    fn rank(&self) -> (u64, Reverse<u64>) {
        (self.0.busy(), Reverse(self.0.lane))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl Visit for Census {
    fn wake(&mut self, at: u64) {
        self.now = at;
    }

    fn open(&mut self, lane: u64, key: usize) {
        self.open.insert(lane, Lane { lane, key, opened: self.now, ..Lane::default() });
    }

    fn close(&mut self, lane: u64, closed: bool) {
        if let Some(mut l) = self.open.remove(&lane) {
            l.closed = closed.then_some(self.now);
            self.ended(l);
        }
    }

    fn turn(&mut self, lane: u64, turn: Turn) {
        let Some(l) = self.open.get_mut(&lane) else { return };
        l.turns += 1;
        l.read = l.read.saturating_add(turn.read);
        l.written = l.written.saturating_add(turn.written);
        l.max_owed = l.max_owed.max(turn.owed);
        if turn.handshake {
            l.handshake_done = Some(self.now);
        }
        // A pause is a stretch without READ interest that reading ended; one
        // still running at the close is the client done sending, not a pause.
        if turn.interest & READ == 0 {
            l.paused_since.get_or_insert(self.now);
        } else if let Some(from) = l.paused_since.take() {
            l.pauses += 1;
            l.longest_pause = l.longest_pause.max(self.now - from);
        }
    }
}

impl Census {
    /// A connection is over: keep it among the busiest, or add it to the rest.
    fn ended(&mut self, lane: Lane) {
        self.all.add(&lane);
        self.busiest.push(Reverse(Ranked(lane)));
        if self.busiest.len() > ROWS {
            if let Some(Reverse(Ranked(least))) = self.busiest.pop() {
                self.rest.add(&least);
            }
        }
    }

    /// The file is read: end the connections still open and choose what to show.
    pub fn finish(mut self, reading: &Reading) -> Lanes {
        let open: Vec<Lane> = self.open.drain().map(|(_, lane)| lane).collect();
        for lane in open {
            self.ended(lane);
        }
        let u = reading.untracked;
        for totals in [&mut self.rest, &mut self.all] {
            totals.connections += u.connections;
            totals.read = totals.read.saturating_add(u.read);
            totals.written = totals.written.saturating_add(u.written);
        }
        let mut rows: Vec<Lane> = self.busiest.into_iter().map(|Reverse(Ranked(l))| l).collect();
        rows.sort_by_key(|l| Reverse((l.busy(), Reverse(l.lane))));
        let mut drawn: Vec<u64> = rows.iter().take(DRAWN).map(|l| l.lane).collect();
        drawn.sort_unstable();
        rows.sort_by_key(|l| l.lane);
        Lanes { rows, drawn, rest: self.rest, all: self.all }
    }
}
