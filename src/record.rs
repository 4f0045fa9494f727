//! `progjar server --record FILE`: what the loop did at each wake-up, on disk.
//!
//! A trace log (`RUST_LOG=trace`) tells the same story in words, but it is
//! long, slow and hard to draw. The recording is one compact line per return
//! of `poll`, which `progjar record-page` (`timeline.rs`) turns into a picture
//! of one thread serving many clients in turn.
//!
//! # The format
//!
//! ```text
//! progjar-record 1 read_size=16384 max_pending=65536 limit=16777216
//! 1520 eL:r o0                          <- µs since start; listener readable; conn 0 accepted
//! 1733 e0:r t0:46:46:0:r                <- conn 0 readable; its turn read 46 B, wrote 46 B,
//!                                          owes 0 B, now asks for readable (interest r)
//! 1801 e0:rR t0:0:0:0:r c0              <- its FIN (R): read 0 B, closed
//! # stopped: the recording reached --record-limit (16777216 bytes)
//! ```
//!
//! Items, in the order the loop did them: `e<token>:<kinds>` an event (token
//! `L` the listener, `S` the signal pipe; kinds `r` readable, `w` writable, `R`
//! read side closed, `W` write side closed, `x` error); `o<key>` a connection
//! accepted; `t<key>:<read>:<written>:<owed>:<interest>` one turn of a
//! connection (`g` instead of `t` when the loop came back by itself after a
//! turn that made all its reads), interest `r`, `w`, `rw` or `-`; `c<key>` a
//! connection closed; `+<n>` ends a line that had no room for n more items.
//! Lines starting with `#` are notes: `# dropped N lines: ...`, and `# stopped:
//! ...` (the limit, or a write error: `writer.rs`). Every line ends with a
//! newline, so a file that does not was cut short (the server was killed, or
//! a write failed where the file could not be cut back to a whole line).
//!
//! # Cost
//!
//! Off, the loop pays one `Option` check per wake-up and per connection turn,
//! and nothing per read or write: a turn's bytes are the difference of the
//! connection's counters before and after it. On, lines are formatted into a
//! batch in memory and handed to a writer thread without waiting (like the
//! log queue in `logging.rs`); if the file falls behind, whole batches are
//! dropped and counted in a note, and past `--record-limit` bytes recording
//! stops with a note and a log line. The loop never waits on the file, not
//! even to open it (`writer.rs`).

mod writer;

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;
use std::time::{Duration, Instant};

use log::warn;
use mio::{Events, Interest, Token};

use crate::cli::{Failure, EXIT_USAGE};
use crate::event_loop::{Handler, Readiness, Wire};
use crate::units::grouped;
use writer::Sink;

/// The first word of a recording, with its version.
pub const MAGIC: &str = "progjar-record 1";

/// `--record-limit`'s default: a few seconds of a busy loop, a page's worth.
pub const DEFAULT_LIMIT: usize = 16 * 1024 * 1024;

/// A batch goes to the writer once it holds this much...
const BATCH_BYTES: usize = 64 * 1024;
/// ...and has room for this much, reserved once: a wake-up's line may be long
/// (1024 events and their turns), but it never makes the batch reallocate.
const BATCH_CAPACITY: usize = 4 * BATCH_BYTES;
/// Room one item needs at most (`t<key>:<read>:<written>:<owed>:rw`, each
/// number up to 20 digits); items that would not fit are left out and counted.
const ITEM_ROOM: usize = 112;
/// ...or once it is this old, so that a quiet server's file keeps up.
const BATCH_AGE: Duration = Duration::from_millis(100);
/// Batches waiting for the disk before new ones are dropped: memory stays
/// under about (this + 2) batches, however slow the disk.
const QUEUED_BATCHES: usize = 16;
/// How long the server waits at exit for the writer to finish the file.
const EXIT_WAIT: Duration = Duration::from_secs(1);

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
    pub fn start(
        options: Option<&Options>,
        read_size: usize,
        max_pending: usize,
    ) -> Result<Recording, Failure> {
        let Some(options) = options else { return Ok(Recording(None)) };
        let shown = options.path.display();
        let sink = writer::open(&options.path)
            .map_err(|e| Failure::new(EXIT_USAGE, format!("cannot record to {shown}: {e}")))?;
        if let Sink::Fifo(_) = sink {
            warn!(
                "nothing reads the FIFO {shown} yet: the recording starts when something does \
                 (meanwhile its lines wait in memory, and past a few MiB are dropped, with a note)"
            );
        }
        let header = format!(
            "{MAGIC} read_size={read_size} max_pending={max_pending} limit={}\n",
            options.limit
        );
        let recorder = Recorder::new(sink, options.clone(), header.into_bytes())
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
            r.put(format_args!(" o{key}"));
        }
    }

    /// Connection `key` was closed.
    #[inline]
    pub fn close(&mut self, key: usize) {
        if let Some(r) = &mut self.0 {
            r.put(format_args!(" c{key}"));
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
            let kind = if ready.again { 'g' } else { 't' };
            let interest = interest_word(now.interest);
            let owed = now.owed;
            r.put(format_args!(" {kind}{key}:{read}:{written}:{owed}:{interest}"));
        }
    }
}

/// A registry interest as the recording writes it.
fn interest_word(interest: Option<Interest>) -> &'static str {
    match interest {
        Some(i) if i.is_readable() && i.is_writable() => "rw",
        Some(i) if i.is_readable() => "r",
        Some(i) if i.is_writable() => "w",
        _ => "-",
    }
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
    /// Wake-up lines dropped since a batch last reached the writer.
    dropped: u64,
    /// Items of this line left out for want of room (written as `+N`).
    left_out: u64,
    stopped: bool,
    to_writer: Option<SyncSender<Vec<u8>>>,
    /// Empty batches the writer hands back, so that batches are reused.
    spare: Receiver<Vec<u8>>,
    /// Says when the writer has finished the file.
    done: Receiver<()>,
}

impl Recorder {
    fn new(sink: Sink, options: Options, header: Vec<u8>) -> io::Result<Recorder> {
        let (to_writer, batches) = mpsc::sync_channel::<Vec<u8>>(QUEUED_BATCHES);
        let (give_back, spare) = mpsc::channel();
        let (finished, done) = mpsc::channel();
        let path = options.path.display().to_string();
        thread::Builder::new().name("record".into()).spawn(move || {
            writer::write_batches(sink, &path, &batches, &give_back);
            let _ = finished.send(());
        })?;
        let now = Instant::now();
        let mut batch = new_batch().ok_or(io::ErrorKind::OutOfMemory)?;
        batch.extend_from_slice(&header);
        Ok(Recorder {
            options,
            started: now,
            line_start: batch.len(),
            total: 0,
            batch,
            last_sent: now,
            dropped: 0,
            left_out: 0,
            stopped: false,
            to_writer: Some(to_writer),
            spare,
            done,
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
            let mut kinds = [0u8; 5];
            let mut n = 0;
            for (on, kind) in [
                (event.is_readable(), b'r'),
                (event.is_writable(), b'w'),
                (event.is_read_closed(), b'R'),
                (event.is_write_closed(), b'W'),
                (event.is_error(), b'x'),
            ] {
                if on {
                    (kinds[n], n) = (kind, n + 1);
                }
            }
            let kinds = std::str::from_utf8(&kinds[..n]).unwrap_or("");
            match event.token() {
                Token(usize::MAX) => self.put(format_args!(" eL:{kinds}")),
                Token(key) if key == usize::MAX - 1 => self.put(format_args!(" eS:{kinds}")),
                Token(key) => self.put(format_args!(" e{key}:{kinds}")),
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
            let _ = write!(self.batch, " +{}", std::mem::take(&mut self.left_out));
        }
        self.batch.push(b'\n');
        // Bytes already handed over, plus the whole lines waiting here.
        if self.total + self.batch.len() > self.options.limit {
            self.batch.truncate(self.line_start);
            let limit = grouped(self.options.limit as u64);
            let _ = writeln!(
                self.batch,
                "# stopped: the recording reached --record-limit ({limit} bytes)"
            );
            self.stopped = true;
            self.line_start = self.batch.len();
            // A writer that stopped on an error has said why itself.
            if self.send(Instant::now()) != Sent::WriterGone {
                warn!(
                    "recording stopped: {} reached --record-limit ({limit} bytes)",
                    self.options.path.display()
                );
            }
        }
        self.line_start = self.batch.len();
    }

    /// Hand the batch (whole lines only: called between lines) to the writer,
    /// without waiting: when it is behind, drop it and say so in a note at the
    /// head of the next batch (after the last line, keep it for the exit).
    fn send(&mut self, now: Instant) -> Sent {
        self.last_sent = now;
        let Some(to_writer) = &self.to_writer else { return Sent::WriterGone };
        if self.batch.is_empty() {
            return Sent::Queued;
        }
        let lines = count_lines(&self.batch);
        self.total += self.batch.len();
        // The next batch: one the writer gave back, or a new one if memory
        // allows; if not, this one's lines are dropped and it is reused.
        let Some(next) = self.spare.try_recv().ok().or_else(new_batch) else {
            self.batch.clear();
            self.dropped += lines;
            let dropped = grouped(self.dropped);
            let _ = writeln!(self.batch, "# dropped {dropped} lines: out of memory for them");
            self.line_start = self.batch.len();
            return Sent::Dropped;
        };
        let batch = std::mem::replace(&mut self.batch, next);
        let sent = match to_writer.try_send(batch) {
            Ok(()) => {
                self.dropped = 0;
                Sent::Queued
            }
            // The last batch (the limit's note): the exit waits for room for it.
            Err(TrySendError::Full(batch)) if self.stopped => {
                self.batch = batch;
                Sent::Queued
            }
            Err(TrySendError::Full(_)) => {
                self.dropped += lines;
                let dropped = grouped(self.dropped);
                let _ = writeln!(
                    self.batch,
                    "# dropped {dropped} lines: the file was not taking them fast enough"
                );
                Sent::Dropped
            }
            // The writer stopped on an error (and logged it): recording is over.
            Err(TrySendError::Disconnected(_)) => {
                self.stopped = true;
                self.to_writer = None;
                self.batch.clear();
                Sent::WriterGone
            }
        };
        self.line_start = self.batch.len();
        sent
    }
}

/// What became of a batch handed to the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// On its way to the file (or kept for the exit).
    Queued,
    /// Dropped for want of room, and counted in a note.
    Dropped,
    /// The writer has stopped: nothing more will be written.
    WriterGone,
}

/// An empty batch with its whole capacity, or `None` if memory is short.
fn new_batch() -> Option<Vec<u8>> {
    let mut batch = Vec::new();
    batch.try_reserve_exact(BATCH_CAPACITY).ok()?;
    Some(batch)
}

/// How many wake-up lines (not notes) a batch holds.
fn count_lines(batch: &[u8]) -> u64 {
    let wakes = batch.split(|&b| b == b'\n').filter(|l| l.first().is_some_and(|&b| b != b'#'));
    wakes.count() as u64
}

impl Drop for Recorder {
    /// The server is done: finish the last line, hand over what is left and
    /// wait a moment for the writer to put it on disk.
    fn drop(&mut self) {
        self.end_line();
        let deadline = Instant::now() + EXIT_WAIT;
        // No loop to keep going now: wait for room for the last batch, a little.
        if let Some(to_writer) = self.to_writer.take() {
            let mut last = std::mem::take(&mut self.batch);
            while let Err(TrySendError::Full(batch)) = to_writer.try_send(last) {
                if Instant::now() >= deadline {
                    break;
                }
                thread::sleep(Duration::from_millis(1));
                last = batch;
            }
        } // dropping the sender ends the writer after the last batch
        let _ = self.done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}
