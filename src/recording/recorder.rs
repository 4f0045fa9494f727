//! The writer of a recording: the server's hooks, and the lines they build.
//!
//! Off, the loop pays one `Option` check per wake-up and per connection turn,
//! and nothing per read or write: a turn's bytes are the difference of the
//! connection's counters before and after it. On, each wake-up's line is
//! formatted into a batch in memory, and whole lines go to a lossy background
//! writer (`background.rs`) without waiting; if the file falls behind, lines
//! are dropped and counted in a note, and past `--record-limit` bytes
//! recording stops with a note and a log line. The loop never waits on the
//! file, not even to open it (`file.rs`).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use log::warn;
use mio::{Events, Interest, Token};

use super::file::{self, Sink};
use super::format::{
    interest_word, token, AGAIN, CLOSE, EVENT, HANDSHAKE, KINDS, LEFT_OUT, LISTENER, MAGIC, NOTE,
    OPEN, READ, SIGNALS, SOCKET, SOURCES, TURN, WRITE,
};
use crate::background::{Pushed, Writer};
use crate::cli::{Failure, EXIT_USAGE};
use crate::event_loop::{self, Handler, Readiness, Wire};
use crate::units::grouped;

/// `--record-limit`'s default: a few seconds of a busy loop, a page's worth.
pub const DEFAULT_LIMIT: usize = 16 * 1024 * 1024;

/// A batch goes to the writer once it holds this much...
const BATCH_BYTES: usize = 64 * 1024;
/// ...and has room for this much, reserved once: a wake-up's line may be long
/// (1024 events and their turns), but it never makes the batch reallocate.
const BATCH_CAPACITY: usize = 4 * BATCH_BYTES;
/// ...or once it is this old, so that a quiet server's file keeps up.
const BATCH_AGE: Duration = Duration::from_millis(100);
/// Room one item needs at most (`t<key>:<read>:<written>:<owed>:rw`, each
/// number up to 20 digits); items that would not fit are left out and counted.
const ITEM_ROOM: usize = 112;
/// Bytes waiting for the disk before new lines are dropped. The writer's
/// thread holds as much again while it writes, so memory stays under twice
/// this and a batch, however slow the disk.
const QUEUE_BYTES: usize = 2 * 1024 * 1024;

/// `--record FILE` and `--record-limit`, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the recording goes (created or truncated at start).
    pub path: PathBuf,
    /// Bytes after which recording stops, with a note.
    pub limit: usize,
}

/// The server's recorder, or nothing when `--record` is not given.
#[derive(Debug, Default)]
pub struct Recording(Option<Box<Recorder>>);

impl Recording {
    /// Open the file and start the writer, or return nothing to do. Fails with
    /// one line (exit 2) when the file cannot be created, before serving.
    /// `sources` is how many sockets each connection has ([`Handler::SOURCES`]):
    /// with more than one, events name the socket too (`format.rs`).
    pub fn start(
        options: Option<&Options>,
        read_size: usize,
        max_pending: usize,
        sources: usize,
    ) -> Result<Recording, Failure> {
        let Some(options) = options else { return Ok(Recording(None)) };
        let shown = options.path.display();
        let sink = file::open(&options.path)
            .map_err(|e| Failure::new(EXIT_USAGE, format!("cannot record to {shown}: {e}")))?;
        if let Sink::Fifo(_) = sink {
            warn!(
                "nothing reads the FIFO {shown} yet: the recording starts when something does \
                 (meanwhile its lines wait in memory, and past a few MiB are dropped, with a note)"
            );
        }
        // One socket per connection (the echo) writes the header as it always has.
        let several = if sources > 1 { format!(" {SOURCES}={sources}") } else { String::new() };
        let header = format!(
            "{MAGIC} read_size={read_size} max_pending={max_pending} limit={}{several}\n",
            options.limit
        );
        let writer = Writer::start("record", QUEUE_BYTES, file::Output::new(sink, &options.path));
        let recorder = writer
            .and_then(|writer| Recorder::new(writer, options.clone(), header.as_bytes(), sources))
            .map_err(|e| Failure::new(EXIT_USAGE, format!("cannot record to {shown}: {e}")))?;
        Ok(Recording(Some(Box::new(recorder))))
    }

    /// `poll` returned: begin this wake-up's line with the time and events.
    #[inline]
    pub fn wake(&mut self, events: &Events) {
        if let Some(r) = &mut self.0 {
            r.wake(events);
        }
    }

    /// Connection `key` was accepted.
    #[inline]
    pub fn open(&mut self, key: usize) {
        if let Some(r) = &mut self.0 {
            r.put(format_args!(" {OPEN}{key}"));
        }
    }

    /// Connection `key` was closed.
    #[inline]
    pub fn close(&mut self, key: usize) {
        if let Some(r) = &mut self.0 {
            r.put(format_args!(" {CLOSE}{key}"));
        }
    }

    /// A connection's counters before its turn; nothing when not recording.
    #[inline]
    pub fn before(&self, handler: &impl Handler) -> Option<Wire> {
        self.0.as_ref().map(|_| handler.wire())
    }

    /// Connection `key`'s turn is over: what it read, wrote, owes and asks for.
    #[inline]
    pub fn turn(
        &mut self,
        key: usize,
        ready: Readiness,
        before: Option<Wire>,
        handler: &impl Handler,
    ) {
        if let (Some(r), Some(b)) = (&mut self.0, before) {
            let now = handler.wire();
            let read = now.read.saturating_sub(b.read);
            let written = now.written.saturating_sub(b.written);
            let kind = match (ready.again, b.handshake) {
                (_, true) => HANDSHAKE,
                (true, false) => AGAIN,
                (false, false) => TURN,
            };
            let interest = interest(now.interest);
            let owed = now.owed;
            r.put(format_args!(" {kind}{key}:{read}:{written}:{owed}:{interest}"));
        }
    }
}

/// A registry interest as the recording writes it.
fn interest(interest: Option<Interest>) -> &'static str {
    let Some(i) = interest else { return interest_word(0) };
    let read = if i.is_readable() { READ } else { 0 };
    interest_word(read | if i.is_writable() { WRITE } else { 0 })
}

/// The recorder proper: the batch being filled and the way to the writer.
#[derive(Debug)]
struct Recorder {
    options: Options,
    started: Instant,
    /// Whole lines, then the line being built from `line_start` on.
    batch: Vec<u8>,
    line_start: usize,
    last_sent: Instant,
    /// Bytes handed to the writer (or dropped) so far, for the limit.
    total: usize,
    /// Items of this line left out for want of room (written as `+N`).
    left_out: u64,
    /// Sockets per connection, for how an event's token is written.
    sources: usize,
    stopped: bool,
    /// The writer; `None` once it has stopped on an error (and said why).
    writer: Option<Writer>,
}

impl Recorder {
    fn new(
        writer: Writer,
        options: Options,
        header: &[u8],
        sources: usize,
    ) -> std::io::Result<Recorder> {
        let now = Instant::now();
        let mut batch = Vec::new();
        batch.try_reserve_exact(BATCH_CAPACITY).map_err(|_| std::io::ErrorKind::OutOfMemory)?;
        // The header goes at once: the writer's thread opens a FIFO for it.
        writer.push(header, 0);
        Ok(Recorder {
            options,
            started: now,
            line_start: 0,
            total: header.len(),
            batch,
            last_sent: now,
            left_out: 0,
            sources,
            stopped: false,
            writer: Some(writer),
        })
    }

    fn wake(&mut self, events: &Events) {
        if self.stopped {
            return;
        }
        let now = Instant::now();
        self.end_line();
        if self.stopped {
            return;
        }
        if self.batch.len() >= BATCH_BYTES || now.duration_since(self.last_sent) >= BATCH_AGE {
            self.send(now);
        }
        let micros = now.duration_since(self.started).as_micros();
        self.put(format_args!("{micros}"));
        for event in events.iter() {
            let on = [
                event.is_readable(),
                event.is_writable(),
                event.is_read_closed(),
                event.is_write_closed(),
                event.is_error(),
            ];
            let mut kinds = [0u8; KINDS.len()];
            let mut n = 0;
            for (kind, _) in KINDS.iter().zip(on).filter(|(_, on)| *on) {
                (kinds[n], n) = (*kind as u8, n + 1);
            }
            let kinds = std::str::from_utf8(&kinds[..n]).unwrap_or("");
            match event.token() {
                event_loop::LISTENER => self.put(format_args!(" {EVENT}{LISTENER}:{kinds}")),
                // A stop request, by signal or from another thread (the waker).
                event_loop::SIGNALS | event_loop::WAKER => {
                    self.put(format_args!(" {EVENT}{SIGNALS}:{kinds}"))
                }
                Token(t) => match token(t, self.sources) {
                    (key, None) => self.put(format_args!(" {EVENT}{key}:{kinds}")),
                    (key, Some(socket)) => {
                        self.put(format_args!(" {EVENT}{key}{SOCKET}{socket}:{kinds}"))
                    }
                },
            }
        }
    }

    /// Add an item to the line, if the batch has room for it without
    /// growing; the room for the line's end (`+N` and the newline) stays.
    fn put(&mut self, item: std::fmt::Arguments<'_>) {
        if self.stopped {
            return;
        }
        if self.batch.len() + 2 * ITEM_ROOM > self.batch.capacity() {
            self.left_out += 1;
            return;
        }
        let _ = self.batch.write_fmt(item);
    }

    /// Close the line being built; past the limit, replace it with the note
    /// that says recording stopped.
    fn end_line(&mut self) {
        if self.batch.len() == self.line_start {
            return;
        }
        if self.left_out > 0 {
            let _ = write!(self.batch, " {LEFT_OUT}{}", std::mem::take(&mut self.left_out));
        }
        self.batch.push(b'\n');
        // Bytes already handed over, plus the whole lines waiting here.
        if self.total + self.batch.len() > self.options.limit {
            self.batch.truncate(self.line_start);
            let limit = grouped(self.options.limit as u64);
            let _ = writeln!(
                self.batch,
                "{NOTE} stopped: the recording reached --record-limit ({limit} bytes)"
            );
            self.stopped = true;
            self.line_start = self.batch.len();
            // A writer that stopped on an error has said why itself.
            if self.send(Instant::now()) != Pushed::Closed {
                warn!(
                    "recording stopped: {} reached --record-limit ({limit} bytes)",
                    self.options.path.display()
                );
            }
        }
        self.line_start = self.batch.len();
    }

    /// Hand the batch (whole lines only: called between lines) to the writer,
    /// without waiting; when it has no room, the lines are dropped and the
    /// writer notes how many (after the last line, keep it for the exit).
    fn send(&mut self, now: Instant) -> Pushed {
        self.last_sent = now;
        let Some(writer) = &self.writer else { return Pushed::Closed };
        if self.batch.is_empty() {
            return Pushed::Queued;
        }
        // The last batch is not counted as dropped: it waits for the exit.
        let lines = if self.stopped { 0 } else { count_lines(&self.batch) };
        let pushed = match writer.push(&self.batch, lines) {
            // The last batch (the limit's note): the exit waits for room for it.
            Pushed::Dropped if self.stopped => return Pushed::Queued,
            // The writer stopped on an error (and said why): recording is over.
            Pushed::Closed => {
                self.stopped = true;
                self.writer = None;
                Pushed::Closed
            }
            pushed => pushed,
        };
        self.total += self.batch.len();
        self.batch.clear();
        self.line_start = 0;
        pushed
    }
}

/// How many wake-up lines (not notes) a batch holds.
fn count_lines(batch: &[u8]) -> u64 {
    let note = NOTE as u8;
    let wakes = batch.split(|&b| b == b'\n').filter(|l| l.first().is_some_and(|&b| b != note));
    wakes.count() as u64
}

impl Drop for Recorder {
    /// The server is done: finish the last line and hand over what is left,
    /// for the writer to put on disk within its exit wait.
    fn drop(&mut self) {
        self.end_line();
        if let Some(writer) = self.writer.take() {
            writer.finish(&self.batch, count_lines(&self.batch));
        }
    }
}
