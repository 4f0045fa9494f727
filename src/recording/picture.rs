//! The second reading of a recording: what the page draws of the busiest
//! connections.
//!
//! Everything here is sized by the picture, not by the file: for each drawn
//! lane its bytes summed per pixel column, and its pauses and waits merged
//! where they are less than a pixel apart; the columns in which the loop woke
//! up; and the window of consecutive wake-ups in which the most drawn lanes
//! moved bytes, found by sliding over the file once.

use std::collections::VecDeque;

use super::census::Lanes;
use super::format::{READ, WRITE};
use super::read::{Turn, Visit};

/// Wake-ups in the page's second picture.
pub const WINDOW: usize = 48;

/// A stretch of time on a lane, µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Start, µs.
    pub from: u64,
    /// End, µs.
    pub to: u64,
}

/// One drawn connection.
#[derive(Debug, Clone, Default)]
pub struct DrawnLane {
    /// Its number (see [`super::census::Lane`]) and slab key.
    pub lane: u64,
    /// See `lane`.
    pub key: usize,
    /// When it was accepted and closed (or the picture's end), µs.
    pub opened: u64,
    /// See `opened`.
    pub closed: u64,
    /// Bytes read and written back in each pixel column.
    pub columns: Vec<(u64, u64)>,
    /// Its reading paused (backpressure) and resumed.
    pub paused: Vec<Span>,
    /// Its reading stopped for good before the close: the client done
    /// sending while its echo finished.
    pub tail: Option<Span>,
    /// Asking for WRITABLE: bytes owed, waiting for room.
    pub waiting: Vec<Span>,
    /// Its TLS handshake: from the accept to its last handshake turn.
    pub handshake: Option<Span>,
    paused_since: Option<u64>,
    waiting_since: Option<u64>,
    ended: bool,
}

/// One wake-up in the window: which drawn lanes (bit = row) had a turn,
/// read and wrote in it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Marks {
    /// Its number among all wake-ups, from 0.
    pub index: u64,
    /// When, µs.
    pub at: u64,
    /// Rows with a turn.
    pub turned: u64,
    /// Rows whose turn read bytes.
    pub read: u64,
    /// Rows whose turn wrote bytes.
    pub written: u64,
    /// Rows whose turn was one of a TLS handshake.
    pub handshake: u64,
}

/// What the page draws.
#[derive(Debug, Default)]
pub struct Drawing {
    /// The end of the time axis, µs (at least 1).
    pub end: u64,
    /// The drawn lanes, in order.
    pub lanes: Vec<DrawnLane>,
    /// The pixel columns in which the loop woke up.
    pub woke: Vec<bool>,
    /// The window's wake-ups, in order.
    pub window: Vec<Marks>,
}

/// The second reading's [`Visit`].
#[derive(Debug)]
pub struct Picture {
    drawing: Drawing,
    /// µs per pixel column.
    pixel: f64,
    now: u64,
    wakes: u64,
    current: Option<Marks>,
    window: Window,
}

impl Picture {
    /// Draw `lanes.drawn` on `columns` pixel columns from 0 to `end` µs.
    pub fn new(lanes: &Lanes, end: u64, columns: usize) -> Picture {
        let end = end.max(1);
        let columns = columns.max(1);
        let lane = |&lane: &u64| DrawnLane {
            lane,
            columns: vec![(0, 0); columns],
            closed: end,
            ..DrawnLane::default()
        };
        let drawing = Drawing {
            end,
            lanes: lanes.drawn.iter().map(lane).collect(),
            woke: vec![false; columns],
            window: Vec::new(),
        };
        Picture {
            pixel: end as f64 / columns as f64,
            drawing,
            now: 0,
            wakes: 0,
            current: None,
            window: Window::default(),
        }
    }

    /// The pixel column of time `at`.
    fn column(&self, at: u64) -> usize {
        let columns = self.drawing.woke.len();
        ((at as f64 / self.pixel) as usize).min(columns - 1)
    }

    /// The row a lane is drawn in, if it is drawn.
    fn row(&self, lane: u64) -> Option<usize> {
        self.drawing.lanes.binary_search_by_key(&lane, |l| l.lane).ok()
    }

    /// The file is read: end the lanes still open and hand over the drawing.
    pub fn finish(mut self) -> Drawing {
        if let Some(marks) = self.current.take() {
            self.window.push(marks);
        }
        let (end, pixel) = (self.drawing.end, self.pixel);
        for lane in self.drawing.lanes.iter_mut().filter(|l| !l.ended) {
            lane.end(end, pixel);
        }
        self.drawing.window = self.window.finish();
        self.drawing
    }
}

impl Visit for Picture {
    fn wake(&mut self, at: u64) {
        if let Some(marks) = self.current.take() {
            self.window.push(marks);
        }
        self.now = at;
        self.current = Some(Marks { index: self.wakes, at, ..Marks::default() });
        self.wakes += 1;
        // The idle tail after the last event is not drawn.
        if at <= self.drawing.end {
            let column = self.column(at);
            self.drawing.woke[column] = true;
        }
    }

    fn open(&mut self, lane: u64, key: usize) {
        let now = self.now;
        if let Some(row) = self.row(lane) {
            let l = &mut self.drawing.lanes[row];
            (l.key, l.opened) = (key, now);
        }
    }

    fn close(&mut self, lane: u64, closed: bool) {
        let (now, end, pixel) = (self.now, self.drawing.end, self.pixel);
        if let Some(row) = self.row(lane) {
            self.drawing.lanes[row].end(if closed { now } else { end }, pixel);
        }
    }

    fn turn(&mut self, lane: u64, turn: Turn) {
        let Some(row) = self.row(lane) else { return };
        let (now, pixel, column) = (self.now, self.pixel, self.column(self.now));
        if let Some(marks) = &mut self.current {
            let bit = 1u64 << row;
            marks.turned |= bit;
            marks.read |= if turn.read > 0 { bit } else { 0 };
            marks.written |= if turn.written > 0 { bit } else { 0 };
            marks.handshake |= if turn.handshake { bit } else { 0 };
        }
        let l = &mut self.drawing.lanes[row];
        if turn.handshake {
            l.handshake = Some(Span { from: l.opened, to: now });
        }
        let sums = &mut l.columns[column];
        (sums.0, sums.1) = (sums.0.saturating_add(turn.read), sums.1.saturating_add(turn.written));
        let paused = turn.interest & READ == 0;
        if let Some(span) = stretch(&mut l.paused_since, paused, now) {
            merge(&mut l.paused, span, pixel);
        }
        if let Some(span) = stretch(&mut l.waiting_since, turn.interest & WRITE != 0, now) {
            merge(&mut l.waiting, span, pixel);
        }
    }
}

impl DrawnLane {
    /// The connection ended at `at`: a pause still running is its tail.
    fn end(&mut self, at: u64, pixel: f64) {
        self.closed = at;
        self.ended = true;
        self.tail = self.paused_since.take().map(|from| Span { from, to: at });
        if let Some(from) = self.waiting_since.take() {
            merge(&mut self.waiting, Span { from, to: at }, pixel);
        }
    }
}

/// A stretch that is `on` from one turn until a turn where it is not: its
/// span when it ends at `now`.
fn stretch(since: &mut Option<u64>, on: bool, now: u64) -> Option<Span> {
    match (*since, on) {
        (None, true) => {
            *since = Some(now);
            None
        }
        (Some(from), false) => {
            *since = None;
            Some(Span { from, to: now })
        }
        _ => None,
    }
}

/// Add `span` to `spans`, joined to the last one when less than a pixel
/// apart: a lane never holds more spans than the picture has columns.
fn merge(spans: &mut Vec<Span>, span: Span, pixel: f64) {
    match spans.last_mut() {
        Some(last) if (span.from as f64) <= last.to as f64 + pixel => {
            last.to = last.to.max(span.to)
        }
        _ => spans.push(span),
    }
}

/// The busiest [`WINDOW`] wake-ups: the first in which the most drawn lanes
/// moved bytes, or the first [`WINDOW`] if none did more.
#[derive(Debug)]
struct Window {
    /// The last wake-ups, and how many of them each row moved bytes in.
    last: VecDeque<Marks>,
    moved: [u32; u64::BITS as usize],
    best: usize,
    first: Vec<Marks>,
    chosen: Option<Vec<Marks>>,
}

impl Default for Window {
    fn default() -> Window {
        Window {
            last: VecDeque::with_capacity(WINDOW + 1),
            moved: [0; u64::BITS as usize],
            best: 0,
            first: Vec::with_capacity(WINDOW),
            chosen: None,
        }
    }
}

impl Window {
    fn push(&mut self, marks: Marks) {
        if self.first.len() < WINDOW {
            self.first.push(marks);
        }
        self.count(marks, true);
        self.last.push_back(marks);
        if self.last.len() > WINDOW {
            if let Some(old) = self.last.pop_front() {
                self.count(old, false);
            }
        }
        let lanes = self.moved.iter().filter(|&&n| n > 0).count();
        if lanes > self.best {
            self.best = lanes;
            // Before WINDOW wake-ups, the window is the first WINDOW ones.
            self.chosen = (self.last.len() == WINDOW).then(|| self.last.iter().copied().collect());
        }
    }

    fn count(&mut self, marks: Marks, add: bool) {
        let moved = marks.read | marks.written;
        for (row, n) in self.moved.iter_mut().enumerate() {
            if moved & (1 << row) != 0 {
                *n = if add { *n + 1 } else { n.saturating_sub(1) };
            }
        }
    }

    fn finish(self) -> Vec<Marks> {
        self.chosen.unwrap_or(self.first)
    }
}
