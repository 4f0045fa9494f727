//! A recording read back, line by line, into a [`Visit`].
//!
//! `recorder.rs` writes what the loop did at each wake-up; this file reads it
//! back and hands each connection's items to a [`Visit`], in bounded memory
//! however long the file is: `record-page` (`command.rs`) reads it twice,
//! once for the [`super::census`] and once for the [`super::picture`].
//!
//! The file is input from disk, so anything unexpected (not a recording, a
//! garbled item, an endless line) is one line naming the line number, never a
//! panic. A recording cut short in the middle of a line (the server was
//! killed, or the disk filled) is read up to its last whole line, and the
//! [`Cut`] says where.

use std::collections::HashMap;
use std::io::{BufRead, Read};

use super::format::{
    interest_bits, AGAIN, CLOSE, EVENT, HANDSHAKE, KINDS, LEFT_OUT, LISTENER, MAGIC, NOTE, OPEN,
    SIGNALS, SOCKET, TURN,
};
use crate::units::grouped;

/// The longest line read: the recorder's lines fit in its 256 KiB batch, so
/// a longer one is not a recording's, and must not take all memory.
const MAX_LINE: usize = 1024 * 1024;
/// Connections followed at once. A server holds at most its open-file limit;
/// past this many open in one file, new ones are only counted.
const MAX_OPEN: usize = 100_000;
/// Notes kept for the page; the rest are counted.
const MAX_NOTES: usize = 20;

/// One turn of one connection: what it read, wrote, owes and asks for.
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    /// Bytes read in this turn.
    pub read: u64,
    /// Bytes written back in this turn.
    pub written: u64,
    /// Bytes owed after it.
    pub owed: u64,
    /// [`super::format::READ`] and [`super::format::WRITE`] asked for after it.
    pub interest: u8,
    /// A turn of the connection's TLS handshake ([`HANDSHAKE`]).
    pub handshake: bool,
}

/// What a reading of the file is told, in the file's order. Connections are
/// numbered (their *lane*) in the order they were first seen, from 0.
pub trait Visit {
    /// A wake-up line begins, `at` µs after the first one.
    fn wake(&mut self, at: u64);
    /// Connection `lane` (slab key `key`) was accepted, or first seen.
    fn open(&mut self, lane: u64, key: usize);
    /// Connection `lane` is over: closed, or (`closed` false) its key was
    /// taken by a new connection without a close in the file (lines dropped).
    fn close(&mut self, lane: u64, closed: bool);
    /// Connection `lane` had a turn.
    fn turn(&mut self, lane: u64, turn: Turn);
}

/// Where a recording was cut short: its last line has no newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// The cut line's number (from 1).
    pub line: u64,
    /// The byte offset at which it starts.
    pub offset: u64,
}

/// Connections beyond the 100,000 followed at once: only counted.
#[derive(Debug, Default, Clone, Copy)]
pub struct Untracked {
    /// How many.
    pub connections: u64,
    /// Their bytes read.
    pub read: u64,
    /// Their bytes written back.
    pub written: u64,
}

/// What a reading found besides the connections.
#[derive(Debug, Default)]
pub struct Reading {
    /// The header's settings, e.g. `read_size=16384 max_pending=65536 ...`.
    pub settings: String,
    /// Wake-up lines.
    pub wakes: u64,
    /// Readiness events over all wake-ups.
    pub events: u64,
    /// The last wake-up's time, µs after the first.
    pub end: u64,
    /// The last wake-up that did more than take a signal, µs after the first:
    /// after it the loop only waited (the idle tail the page leaves out).
    pub last_event: u64,
    /// Items the recorder left out of over-long lines (`+N`).
    pub left_out: u64,
    /// The file's first notes (`# stopped: ...`, `# dropped ...`)...
    pub notes: Vec<String>,
    /// ...and how many more there were.
    pub more_notes: u64,
    /// Connections numbered (lanes); see [`Untracked`] for the rest.
    pub lanes: u64,
    /// See [`Untracked`].
    pub untracked: Untracked,
    /// Set when the last line is cut short.
    pub cut: Option<Cut>,
    /// Bytes of whole lines: the part of the file that was read.
    pub whole: u64,
    /// Where the time of the wake-ups starts (the first line's), µs.
    start: Option<u64>,
    /// Lane of each open connection's slab key.
    open: HashMap<usize, u64>,
}

impl Reading {
    /// Read every whole line of `input` (at most `limit` bytes) into `visit`.
    pub fn read(
        input: &mut impl BufRead,
        limit: u64,
        visit: &mut impl Visit,
    ) -> Result<Reading, String> {
        let mut input = input.take(limit);
        let mut r = Reading::default();
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            let n = (&mut input)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("cannot read it: {e}"))?;
            if n == 0 {
                break;
            }
            number += 1;
            let Some(text) = line.strip_suffix(b"\n") else {
                if n > MAX_LINE {
                    return Err(format!("line {number} is longer than any recording's lines"));
                }
                if number == 1 && !line.starts_with(MAGIC.as_bytes()) {
                    return Err(format!("line 1: not a progjar recording (expected {MAGIC:?})"));
                }
                r.cut = Some(Cut { line: number, offset: r.whole });
                break;
            };
            r.whole += n as u64;
            if number == 1 {
                r.settings = header(text)?;
                continue;
            }
            let text =
                std::str::from_utf8(text).map_err(|_| format!("line {number} is not text"))?;
            r.line(text, visit).map_err(|e| format!("line {number}: {e}"))?;
        }
        match (number, r.wakes, r.cut) {
            (0, _, _) => Err("empty file: not a progjar recording".into()),
            (_, 0, Some(cut)) => Err(format!(
                "line {} is cut short (no newline at its end), and no whole wake-up line comes \
                 before it: nothing to draw",
                cut.line
            )),
            (_, 0, None) => Err("no wake-up line after the header: nothing to draw".into()),
            _ => Ok(r),
        }
    }

    /// One line after the header: a note or a wake-up.
    fn line(&mut self, line: &str, visit: &mut impl Visit) -> Result<(), String> {
        if let Some(note) = line.strip_prefix(NOTE) {
            if self.notes.len() < MAX_NOTES {
                self.notes.push(note.trim().to_string());
            } else {
                self.more_notes += 1;
            }
            return Ok(());
        }
        let mut items = line.split(' ');
        let at = self.time(items.next().unwrap_or(""))?;
        self.wakes += 1;
        visit.wake(at);
        let mut did = false;
        for item in items {
            did |= self.item(item, visit)?;
        }
        if did {
            self.last_event = at;
        }
        Ok(())
    }

    /// One item of a wake-up line; whether it was more than a signal (the
    /// idle tail after the last event may end with signals alone).
    fn item(&mut self, item: &str, visit: &mut impl Visit) -> Result<bool, String> {
        let mut chars = item.chars();
        let (kind, rest) = (chars.next(), chars.as_str());
        match kind {
            Some(EVENT) => {
                self.events += 1;
                return Ok(event(rest)? != SIGNALS);
            }
            Some(OPEN) => {
                self.open(number(rest, "a token")?, visit);
            }
            // A connection whose open or close is missing (lines dropped
            // when the disk fell behind) still gets its lane.
            Some(CLOSE) => {
                if let Some(lane) = self.open.remove(&number(rest, "a token")?) {
                    visit.close(lane, true);
                }
            }
            Some(kind @ (TURN | AGAIN | HANDSHAKE)) => {
                let (key, mut turn) = turn(rest)?;
                turn.handshake = kind == HANDSHAKE;
                match self.open.get(&key).copied().or_else(|| self.open(key, visit)) {
                    Some(lane) => visit.turn(lane, turn),
                    None => {
                        let u = &mut self.untracked;
                        u.read = u.read.saturating_add(turn.read);
                        u.written = u.written.saturating_add(turn.written);
                    }
                }
            }
            // Items the recorder had no room for in this line.
            Some(LEFT_OUT) => {
                let n = number::<u64>(rest, "items left out")?;
                self.left_out = self.left_out.saturating_add(n);
            }
            _ => return Err(format!("unknown item {item:?}")),
        }
        Ok(true)
    }

    /// A wake-up's time as µs since the first; times never go back.
    fn time(&mut self, word: &str) -> Result<u64, String> {
        let at: u64 = number(word, "the time")?;
        // Times count from the first wake-up: before it the loop only waited.
        let start = *self.start.get_or_insert(at);
        let since =
            at.checked_sub(start).ok_or(format!("time {at} µs is before the first line's"))?;
        if self.wakes > 0 && since < self.end {
            return Err(format!("time {at} µs goes back before the previous line's"));
        }
        self.end = since;
        Ok(since)
    }

    /// A new connection on `key` (ending the lane of an earlier one on the
    /// same key whose close is missing); `None` when too many are open.
    fn open(&mut self, key: usize, visit: &mut impl Visit) -> Option<u64> {
        if let Some(earlier) = self.open.remove(&key) {
            visit.close(earlier, false);
        }
        if self.open.len() >= MAX_OPEN {
            self.untracked.connections += 1;
            return None;
        }
        let lane = self.lanes;
        self.lanes += 1;
        self.open.insert(key, lane);
        visit.open(lane, key);
        Some(lane)
    }
}

/// The first line: the magic words, then the server's settings.
fn header(line: &[u8]) -> Result<String, String> {
    let not = || format!("line 1: not a progjar recording (expected {MAGIC:?} at the start)");
    let settings = line.strip_prefix(MAGIC.as_bytes()).ok_or_else(not)?;
    let settings = std::str::from_utf8(settings).map_err(|_| not())?;
    Ok(settings.trim().to_string())
}

/// `3:rR`: a token (or `L`, `S`, or `3.1`, a connection's key and its
/// socket) and its readiness kinds; the token.
fn event(rest: &str) -> Result<&str, String> {
    let (token, kinds) = rest.split_once(':').ok_or(format!("event {rest:?} has no ':'"))?;
    if token != LISTENER && token != SIGNALS {
        let (key, socket) = match token.split_once(SOCKET) {
            Some((key, socket)) => (key, Some(socket)),
            None => (token, None),
        };
        number::<usize>(key, "an event's token")?;
        if let Some(socket) = socket {
            number::<usize>(socket, "an event's socket")?;
        }
    }
    if kinds.is_empty() || !kinds.chars().all(|c| KINDS.contains(&c)) {
        let all: Vec<String> = KINDS.iter().map(char::to_string).collect();
        return Err(format!("event kinds {kinds:?} are not some of {}", all.join(", ")));
    }
    Ok(token)
}

/// `3:16384:16384:0:rw`: key, read, written, owed, interest.
fn turn(rest: &str) -> Result<(usize, Turn), String> {
    let mut fields = rest.split(':');
    let mut next = || fields.next();
    let (Some(key), Some(read), Some(written), Some(owed), Some(interest), None) =
        (next(), next(), next(), next(), next(), next())
    else {
        return Err(format!("turn {rest:?} does not have 5 fields"));
    };
    let interest = interest_bits(interest)
        .ok_or_else(|| format!("interest {interest:?} is not r, w, rw or -"))?;
    let turn = Turn {
        read: number(read, "bytes read")?,
        written: number(written, "bytes written")?,
        owed: number(owed, "bytes owed")?,
        interest,
        handshake: false,
    };
    Ok((number(key, "a token")?, turn))
}

fn number<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{what} {s:?} is not a number"))
}

impl Cut {
    /// Where the recording was cut, in words (the page and the log say the same).
    pub fn words(self) -> String {
        format!(
            "cut short: line {} (from byte {}) has no newline at its end (the server was stopped, \
             or its disk filled, while writing it); the whole lines before it are drawn",
            grouped(self.line),
            grouped(self.offset)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what a reading hands over.
    #[derive(Debug, Default)]
    struct Count {
        opens: u64,
        turns: u64,
    }

    impl Visit for Count {
        fn wake(&mut self, _at: u64) {}
        fn open(&mut self, _lane: u64, _key: usize) {
            self.opens += 1;
        }
        fn close(&mut self, _lane: u64, _closed: bool) {}
        fn turn(&mut self, _lane: u64, _turn: Turn) {
            self.turns += 1;
        }
    }

    fn read(text: &str) -> Result<(Reading, Count), String> {
        let mut count = Count::default();
        let reading = Reading::read(&mut text.as_bytes(), u64::MAX, &mut count)?;
        Ok((reading, count))
    }

    #[test]
    fn reads_the_echo_servers_tokens_and_a_relays_key_and_socket() {
        let echo = "progjar-record 1 read_size=65536 max_pending=4194304 limit=16777216\n\
                    10 eL:r o0\n20 e0:r t0:46:46:0:r\n";
        let (r, count) = read(echo).unwrap();
        assert_eq!((r.events, count.opens, count.turns), (2, 1, 1));
        let relay = "progjar-record 1 read_size=65536 max_pending=4194304 limit=16777216 \
                     sources=2\n10 eL:r o0\n20 e0.0:r t0:46:46:0:r\n30 e0.1:rw t0:46:46:0:r\n";
        let (r, count) = read(relay).unwrap();
        assert!(r.settings.ends_with("sources=2"), "{}", r.settings);
        assert_eq!((r.events, count.opens, count.turns), (3, 1, 2));
        assert!(read("progjar-record 1 x\n10 e0.x:r\n").unwrap_err().contains("socket"));
    }
}
