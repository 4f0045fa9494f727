//! `progjar record-page IN OUT.html`: a recording read back, one lane per client.
//!
//! `record.rs` writes what the loop did at each wake-up; this file reads it
//! back into a [`Timeline`]: the wake-ups, and for each connection (a lane)
//! its turns, when it stopped and resumed reading (backpressure) and when it
//! waited to write. `record_page.rs` draws it. The file is input from disk,
//! so anything unexpected (cut short, not a recording, a garbled item) is one
//! line naming the line number, never a panic.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::cli::{Failure, EXIT_FAILURE, EXIT_USAGE};
use crate::record::MAGIC;

/// Interest bits of a [`Turn`].
pub const READ: u8 = 1;
/// See [`READ`].
pub const WRITE: u8 = 2;

/// A recording, read back.
#[derive(Debug, Default)]
pub struct Timeline {
    /// The header's settings, e.g. `read_size=16384 max_pending=65536 ...`.
    pub settings: String,
    /// When the first wake-up happened, µs since recording began.
    pub start: Option<u64>,
    /// When each wake-up happened, µs since the first.
    pub wakes: Vec<u64>,
    /// Readiness events over all wake-ups.
    pub events: u64,
    /// One per connection, in the order they were accepted.
    pub lanes: Vec<Lane>,
    /// The file's notes (`# stopped: ...`, `# dropped ...`).
    pub notes: Vec<String>,
    /// Items the recorder left out of over-long lines (`+N`).
    pub left_out: u64,
}

/// One connection's life as the loop saw it.
#[derive(Debug, Default)]
pub struct Lane {
    /// Its slab key (token); keys are reused after a close, lanes are not.
    pub key: usize,
    /// When it was accepted and closed, µs (closed: `None` if still open at the end).
    pub opened: u64,
    /// See `opened`.
    pub closed: Option<u64>,
    /// Every turn the loop gave it.
    pub turns: Vec<Turn>,
}

/// One turn of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    /// When (its wake-up's time, µs) and which wake-up (index into `wakes`).
    pub at: u64,
    /// See `at`.
    pub wake: usize,
    /// Bytes read and written back in this turn.
    pub read: u64,
    /// See `read`.
    pub written: u64,
    /// Bytes owed after it.
    pub owed: u64,
    /// [`READ`] and [`WRITE`] asked for after it.
    pub interest: u8,
}

/// A stretch of time on a lane, µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Start, µs.
    pub from: u64,
    /// End, µs.
    pub to: u64,
}

impl Lane {
    /// Total bytes read (saturating: the numbers come from a file).
    pub fn read(&self) -> u64 {
        self.turns.iter().map(|t| t.read).fold(0, u64::saturating_add)
    }

    /// Total bytes written back.
    pub fn written(&self) -> u64 {
        self.turns.iter().map(|t| t.written).fold(0, u64::saturating_add)
    }

    /// The most it owed after any turn.
    pub fn max_owed(&self) -> u64 {
        self.turns.iter().map(|t| t.owed).max().unwrap_or(0)
    }

    /// Stretches without READABLE interest: those that ended with reading
    /// resumed are backpressure; the last one, if it lasts to the close, is
    /// the client done sending while its echo finishes (`tail`).
    pub fn paused(&self, end: u64) -> (Vec<Span>, Option<Span>) {
        let spans = self.spans(end, |t| t.interest & READ == 0);
        match spans.last() {
            Some(last) if last.to == self.closed.unwrap_or(end) && self.last_without_read() => {
                (spans[..spans.len() - 1].to_vec(), Some(*last))
            }
            _ => (spans, None),
        }
    }

    fn last_without_read(&self) -> bool {
        self.turns.last().is_some_and(|t| t.interest & READ == 0)
    }

    /// Stretches with WRITABLE interest: bytes owed, waiting for room.
    pub fn waiting_to_write(&self, end: u64) -> Vec<Span> {
        self.spans(end, |t| t.interest & WRITE != 0)
    }

    /// The stretches from a turn where `on` holds to the next where it does not.
    fn spans(&self, end: u64, on: impl Fn(&Turn) -> bool) -> Vec<Span> {
        let mut spans = Vec::new();
        let mut from = None;
        for turn in &self.turns {
            match (from, on(turn)) {
                (None, true) => from = Some(turn.at),
                (Some(f), false) => {
                    spans.push(Span { from: f, to: turn.at });
                    from = None;
                }
                _ => {}
            }
        }
        if let Some(f) = from {
            spans.push(Span { from: f, to: self.closed.unwrap_or(end) });
        }
        spans
    }
}

impl Timeline {
    /// The last wake-up's time, µs (at least 1, for scales).
    pub fn end(&self) -> u64 {
        self.wakes.last().copied().unwrap_or(0).max(1)
    }

    /// Read a recording; `Err` says what is wrong and on which line.
    pub fn parse(text: &str) -> Result<Timeline, String> {
        let body = text.strip_suffix('\n').ok_or_else(|| match text.is_empty() {
            true => "empty file: not a progjar recording".to_string(),
            false => {
                let n = text.lines().count();
                format!(
                    "line {n} is cut short (no newline at its end): the recording was truncated"
                )
            }
        })?;
        let mut lines = body.split('\n');
        let header = lines.next().unwrap_or("");
        let settings = header.strip_prefix(MAGIC).ok_or_else(|| {
            format!("line 1: not a progjar recording (expected {MAGIC:?} at the start)")
        })?;
        let mut timeline =
            Timeline { settings: settings.trim().to_string(), ..Timeline::default() };
        let mut open: HashMap<usize, usize> = HashMap::new();
        for (i, line) in lines.enumerate() {
            match line.strip_prefix('#') {
                Some(note) => timeline.notes.push(note.trim().to_string()),
                None => {
                    timeline.wake(line, &mut open).map_err(|e| format!("line {}: {e}", i + 2))?
                }
            }
        }
        Ok(timeline)
    }

    /// One wake-up's line.
    fn wake(&mut self, line: &str, open: &mut HashMap<usize, usize>) -> Result<(), String> {
        let mut items = line.split(' ');
        let at: u64 = number(items.next().unwrap_or(""), "the time")?;
        // Times count from the first wake-up: before it the loop only waited.
        let start = *self.start.get_or_insert(at);
        let at = at.checked_sub(start).ok_or(format!("time {at} µs is before the first line's"))?;
        if self.wakes.last().is_some_and(|&last| at < last) {
            return Err(format!("time {} µs goes back before the previous line's", at + start));
        }
        let wake = self.wakes.len();
        self.wakes.push(at);
        for item in items {
            let (kind, rest) = item.split_at(item.chars().next().map_or(0, char::len_utf8));
            match kind {
                "e" => {
                    event(rest)?;
                    self.events += 1;
                }
                "o" => {
                    let key = number(rest, "a token")?;
                    open.insert(key, self.lanes.len());
                    self.lanes.push(Lane { key, opened: at, ..Lane::default() });
                }
                // A connection whose open or close is missing (lines dropped
                // when the disk fell behind) still gets its lane.
                "c" => {
                    let key = number(rest, "a token")?;
                    if let Some(lane) = open.remove(&key) {
                        self.lanes[lane].closed = Some(at);
                    }
                }
                "t" | "g" => {
                    let (key, turn) = turn(rest, at, wake)?;
                    let lane = *open.entry(key).or_insert_with(|| {
                        self.lanes.push(Lane { key, opened: at, ..Lane::default() });
                        self.lanes.len() - 1
                    });
                    self.lanes[lane].turns.push(turn);
                }
                // Items the recorder had no room for in this line.
                "+" => {
                    let n = number::<u64>(rest, "items left out")?;
                    self.left_out = self.left_out.saturating_add(n);
                }
                _ => return Err(format!("unknown item {item:?}")),
            }
        }
        Ok(())
    }
}

/// `3:rR`: a token (or `L`, `S`) and its readiness kinds.
fn event(rest: &str) -> Result<(), String> {
    let (token, kinds) = rest.split_once(':').ok_or(format!("event {rest:?} has no ':'"))?;
    if token != "L" && token != "S" {
        number::<usize>(token, "an event's token")?;
    }
    if kinds.is_empty() || !kinds.chars().all(|c| "rwRWx".contains(c)) {
        return Err(format!("event kinds {kinds:?} are not some of r, w, R, W, x"));
    }
    Ok(())
}

/// `3:16384:16384:0:rw`: key, read, written, owed, interest.
fn turn(rest: &str, at: u64, wake: usize) -> Result<(usize, Turn), String> {
    let fields: Vec<&str> = rest.split(':').collect();
    let [key, read, written, owed, interest] = fields[..] else {
        return Err(format!("turn {rest:?} does not have 5 fields"));
    };
    let interest = match interest {
        "r" => READ,
        "w" => WRITE,
        "rw" => READ | WRITE,
        "-" => 0,
        other => return Err(format!("interest {other:?} is not r, w, rw or -")),
    };
    let turn = Turn {
        at,
        wake,
        read: number(read, "bytes read")?,
        written: number(written, "bytes written")?,
        owed: number(owed, "bytes owed")?,
        interest,
    };
    Ok((number(key, "a token")?, turn))
}

fn number<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{what} {s:?} is not a number"))
}

/// Run `progjar record-page IN OUT`: read, draw, write.
pub fn run(input: &Path, output: &Path) -> Result<(), Failure> {
    let shown = input.display();
    let bytes = fs::read(input)
        .map_err(|e| Failure::new(EXIT_USAGE, format!("cannot read {shown}: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Failure::new(EXIT_USAGE, format!("{shown}: not a progjar recording (not text: {e})"))
    })?;
    let timeline =
        Timeline::parse(&text).map_err(|e| Failure::new(EXIT_USAGE, format!("{shown}: {e}")))?;
    let title = input.file_name().map_or(shown.to_string(), |n| n.to_string_lossy().into_owned());
    let page = crate::record_page::render(&timeline, &title);
    fs::write(output, page)
        .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot write {}: {e}", output.display())))
}
