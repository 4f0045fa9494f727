//! A lossy background writer: bytes handed over without waiting, written by a
//! thread of their own, dropped and counted when the output falls behind.
//!
//! The server's loop must never wait on an output: not on stderr (`2>&1 |
//! less` paused, a terminal stopped with Ctrl-S), not on a file (a slow disk,
//! a FIFO nobody reads). Its log (`logging.rs`) and its recording
//! (`recording/`) therefore both go through a [`Writer`]: the loop only copies
//! bytes into a queue of fixed size under a lock that is never held across a
//! write, and a thread does the waiting. When the queue is full, what does not
//! fit is dropped and counted, and so is everything after it until the thread
//! takes the queue: the [`Output`] then writes its own note for the count
//! (`N log lines dropped`, `# dropped N lines ...`) exactly where they are
//! missing. Memory is the queue and the thread's batch, both reserved at
//! start: a push never allocates.

use std::io;
use std::mem;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How long an exiting program waits for a writer to finish its output. A
/// stuck stderr or disk must not keep a stopped server alive.
pub const EXIT_WAIT: Duration = Duration::from_secs(1);

/// Where a [`Writer`]'s thread puts the bytes, and its words for what was lost.
pub trait Output: Send + 'static {
    /// Write `bytes` (whole lines). An error ends the writer: the output has
    /// handled it its own way (said why, or stayed quiet) before returning it.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Say that `n` items (lines) were dropped just here, in its own words.
    fn dropped(&mut self, n: u64) -> io::Result<()>;
}

/// What became of bytes handed to [`Writer::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for the output.
    Queued,
    /// No room: dropped, and counted for the output's note.
    Dropped,
    /// The output failed and the thread has stopped: nothing more is written.
    Closed,
}

/// The producer's side: push without waiting, finish at exit. Clones share
/// one queue and one thread.
#[derive(Debug, Clone)]
pub struct Writer(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when bytes arrive or the writer closes (the thread waits on it).
    filled: Condvar,
    /// Signalled when the thread takes the queue or stops (the exit waits on it).
    taken: Condvar,
}

#[derive(Debug)]
struct State {
    /// Bytes waiting, oldest first; never more than `capacity`.
    queue: Vec<u8>,
    capacity: usize,
    /// Items dropped since the thread last took the queue.
    dropped: u64,
    /// The program is exiting: write what is left, then stop.
    closing: bool,
    /// The thread has stopped: everything is written, or the output failed.
    finished: bool,
}

impl Writer {
    /// Reserve a queue of `capacity` bytes (and the thread's batch of as
    /// many) and start the thread `name` writing to `output`.
    pub fn start(name: &str, capacity: usize, output: impl Output) -> io::Result<Writer> {
        let (queue, batch) = (reserve(capacity)?, reserve(capacity)?);
        let state = State { queue, capacity, dropped: 0, closing: false, finished: false };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            filled: Condvar::new(),
            taken: Condvar::new(),
        });
        let drain = Arc::clone(&shared);
        thread::Builder::new().name(name.into()).spawn(move || drain.drain(output, batch))?;
        Ok(Writer(shared))
    }

    /// Queue `bytes`, which hold `items` items (lines), without waiting; when
    /// they do not fit, or something before them was dropped, count them.
    pub fn push(&self, bytes: &[u8], items: u64) -> Pushed {
        let mut state = self.0.lock();
        if state.finished {
            return Pushed::Closed;
        }
        if !state.fits(bytes.len()) {
            state.dropped += items;
            return Pushed::Dropped;
        }
        // The thread sleeps only on an empty queue: wake it only then.
        let wake = state.queue.is_empty();
        state.queue.extend_from_slice(bytes);
        drop(state);
        if wake {
            self.0.filled.notify_one();
        }
        Pushed::Queued
    }

    /// The program is done: queue `last` (waiting for room for it, since the
    /// loop is over), let the thread write everything and wait for it, all
    /// within [`EXIT_WAIT`].
    pub fn finish(self, last: &[u8], items: u64) {
        let deadline = Instant::now() + EXIT_WAIT;
        let mut state = self.0.lock();
        while !state.finished && !state.fits(last.len()) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            state =
                self.0.taken.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        drop(state);
        self.push(last, items);
        let mut state = self.0.lock();
        state.closing = true;
        self.0.filled.notify_one();
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = self.0.taken.wait_timeout_while(state, left, |s| !s.finished);
    }
}

impl State {
    /// Is there room for `len` more bytes, with nothing dropped before them?
    fn fits(&self, len: usize) -> bool {
        self.dropped == 0 && self.queue.len() + len <= self.capacity
    }
}

/// An empty buffer of `capacity` bytes, or the error that memory is short.
fn reserve(capacity: usize) -> io::Result<Vec<u8>> {
    let mut buffer = Vec::new();
    buffer.try_reserve_exact(capacity).map_err(|_| io::ErrorKind::OutOfMemory)?;
    Ok(buffer)
}

impl Shared {
    /// The lock is only ever held to copy or swap a buffer, never across a
    /// write, so taking it costs the loop no wait on the output.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The thread: take the queue in one batch, write it and the note for
    /// what was dropped after it, repeat, until closing or the output fails.
    fn drain(&self, mut output: impl Output, mut batch: Vec<u8>) {
        loop {
            let mut state = self.lock();
            while state.queue.is_empty() && state.dropped == 0 && !state.closing {
                state = self.filled.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            if state.queue.is_empty() && state.dropped == 0 {
                break; // closing, and everything is written
            }
            mem::swap(&mut state.queue, &mut batch);
            let dropped = mem::take(&mut state.dropped);
            drop(state);
            self.taken.notify_all();
            let written = output.write(&batch).and_then(|()| match dropped {
                0 => Ok(()),
                n => output.dropped(n),
            });
            batch.clear();
            if written.is_err() {
                break;
            }
        }
        let mut state = self.lock();
        state.finished = true;
        state.queue = Vec::new();
        drop(state);
        self.taken.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// An output that waits for a go-ahead before each write, and reports
    /// what it wrote.
    struct Gated {
        go: mpsc::Receiver<()>,
        wrote: mpsc::Sender<String>,
    }

    impl Output for Gated {
        fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.go.recv().map_err(|_| io::ErrorKind::BrokenPipe)?;
            let _ = self.wrote.send(String::from_utf8_lossy(bytes).into_owned());
            Ok(())
        }

        fn dropped(&mut self, n: u64) -> io::Result<()> {
            let _ = self.wrote.send(format!("[{n} dropped]"));
            Ok(())
        }
    }

    fn wait_until(done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "the writer's thread did not get there");
            thread::yield_now();
        }
    }

    #[test]
    fn what_does_not_fit_is_counted_and_noted_where_it_is_missing() {
        let (go, gate) = mpsc::channel();
        let (wrote, written) = mpsc::channel();
        let w = Writer::start("test", 8, Gated { go: gate, wrote }).expect("start");
        assert_eq!(w.push(b"ab\n", 1), Pushed::Queued);
        // The thread takes "ab\n" and waits at the gate: the queue is empty again.
        wait_until(|| w.0.lock().queue.is_empty());
        assert_eq!(w.push(b"cdefg\n", 1), Pushed::Queued);
        assert_eq!(w.push(b"hij\n", 1), Pushed::Dropped); // 6 + 4 > 8
        assert_eq!(w.push(b"k\n", 1), Pushed::Dropped); // it would fit, but comes after a drop
        for _ in 0..3 {
            go.send(()).unwrap();
        }
        w.finish(b"l\n", 1);
        let all: Vec<String> = written.try_iter().collect();
        assert_eq!(all, ["ab\n", "cdefg\n", "[2 dropped]", "l\n"]);
    }

    #[test]
    fn a_failed_output_closes_the_writer_and_the_exit_does_not_wait() {
        let (go, gate) = mpsc::channel();
        let (wrote, _written) = mpsc::channel();
        let w = Writer::start("test", 8, Gated { go: gate, wrote }).expect("start");
        drop(go); // every write fails
        assert_eq!(w.push(b"a\n", 1), Pushed::Queued);
        wait_until(|| w.0.lock().finished);
        assert_eq!(w.push(b"b\n", 1), Pushed::Closed);
        let started = Instant::now();
        w.finish(b"c\n", 1);
        assert!(started.elapsed() < EXIT_WAIT);
    }
}
