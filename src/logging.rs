//! Logging in the course's format, and a log the server's loop never waits for.
//!
//! The course's Python programs log through `logging.basicConfig(level=INFO)`,
//! which prints `INFO:root:message`. progjar keeps that shape, with the module
//! name instead of `root` (`INFO:server:connection from ...`), so a student can
//! put the two logs side by side. Logs go to stderr; stdout is kept for output
//! that scripts read (`listening on ...`, summaries, JSON).
//!
//! A write to stderr blocks when nobody reads it: `progjar server 2>&1 | less`
//! paused, a terminal stopped with Ctrl-S, a slow log collector. The client may
//! wait then, but the server's one thread must not, so the server logs through
//! [`init_nonblocking`]: the loop only copies each formatted line into a
//! bounded queue, and a writer thread of its own does the waiting on stderr.
//! When the queue is full, lines are dropped and counted, and the count is
//! written (`N log lines dropped`) as soon as stderr takes lines again.

use std::io::{self, Write};
use std::mem;
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use crate::cli::{self, Failure};
use crate::units;

/// Bytes of log lines waiting for stderr before new lines are dropped: a
/// couple of thousand lines, a burst a terminal prints in a blink. The writer
/// holds one more batch of this size while it writes, so the log's memory
/// stays under twice this, however stuck stderr is.
pub const QUEUE_BYTES: usize = 256 * 1024;

/// How long the server waits at exit for its last lines (the summary) to
/// reach stderr. A stuck stderr must not keep a stopped server alive.
pub const EXIT_WAIT: Duration = Duration::from_secs(1);

/// Start logging to stderr at level `info`, or at whatever `RUST_LOG` says;
/// a write waits for stderr, as usual. For the client and `info`.
pub fn init() -> LogQueue {
    builder().init();
    LogQueue(None)
}

/// Start logging like [`init`], but through the bounded queue described at the
/// top of this file. For the server; keep the handle to flush at exit.
pub fn init_nonblocking() -> LogQueue {
    let queue = Arc::new(Queue::default());
    let writer = Arc::clone(&queue);
    // Without its thread the queue would only fill and drop: log to stderr
    // directly then, since there is nothing better to do with a line.
    let Ok(_) = thread::Builder::new().name("log".into()).spawn(move || writer.drain(io::stderr()))
    else {
        return init();
    };
    builder().target(env_logger::Target::Pipe(Box::new(Sink(Arc::clone(&queue))))).init();
    LogQueue(Some(queue))
}

/// How the server's `--loops` threads are named: `loop 1`, `loop 2`, ...
const LOOP_THREAD: &str = "loop ";

/// The name of the thread that runs loop `n` of `progjar server --loops`.
/// Its log lines say so after the module: `INFO:server:loop 2: connection from ...`.
pub fn loop_thread(n: usize) -> String {
    format!("{LOOP_THREAD}{n}")
}

/// env_logger with our filter and the course's line format.
///
/// `default_filter_or` (not `filter_level`) is used so that `RUST_LOG` still wins.
fn builder() -> env_logger::Builder {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    builder.format(|out, record| {
        // `progjar::client::exchange` logs as `client`: the command, not the file.
        let target = record.target();
        let module = target.split("::").nth(1).unwrap_or(target);
        let (level, args) = (record.level(), record.args());
        // A line from one of several loops names it; one loop runs on the
        // main thread, so its lines stay exactly the course's shape.
        match thread::current().name().filter(|name| name.starts_with(LOOP_THREAD)) {
            Some(name) => writeln!(out, "{level}:{module}:{name}: {args}"),
            None => writeln!(out, "{level}:{module}:{args}"),
        }
    });
    builder
}

/// The handle on the log queue, if there is one, to flush it at exit.
#[derive(Debug)]
pub struct LogQueue(Option<Arc<Queue>>);

impl LogQueue {
    /// End the server like [`cli::finish`] does, but with the failure line
    /// sent through the queue, and the queue flushed for at most [`EXIT_WAIT`].
    pub fn finish(self, result: Result<(), Failure>) -> ExitCode {
        let Some(queue) = self.0 else { return cli::finish(result) };
        let code = match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(failure) => {
                queue.push(format!("{}\n", cli::error_line(&failure)).as_bytes());
                ExitCode::from(failure.code)
            }
        };
        queue.close(EXIT_WAIT);
        code
    }
}

/// The lines between the loop and the writer thread.
#[derive(Debug, Default)]
struct Queue {
    state: Mutex<State>,
    /// Signalled when lines arrive or the queue closes (the writer waits on it).
    filled: Condvar,
    /// Signalled when the writer has finished (the exit waits on it).
    finished: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Formatted lines, oldest first, at most [`QUEUE_BYTES`].
    lines: Vec<u8>,
    /// Lines dropped since the writer last took the queue.
    dropped: u64,
    /// The server is exiting: write what is left, then stop.
    closing: bool,
    /// The writer has stopped: everything is written, or stderr is gone.
    finished: bool,
}

impl Queue {
    /// The lock is only ever held to copy or swap a buffer, never across a
    /// write, so taking it costs the loop no wait on stderr.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue one line, or count it as dropped when the queue is full.
    fn push(&self, line: &[u8]) {
        let mut state = self.lock();
        if state.finished {
            return; // stderr is gone: nothing will ever write it
        }
        if state.lines.len() + line.len() > QUEUE_BYTES {
            state.dropped += 1;
            return;
        }
        if state.lines.capacity() == 0 {
            // Once, the whole budget: the queue never reallocates after that.
            state.lines.reserve_exact(QUEUE_BYTES);
        }
        // The writer sleeps only on an empty queue: wake it only then.
        let wake = state.lines.is_empty();
        state.lines.extend_from_slice(line);
        drop(state);
        if wake {
            self.filled.notify_one();
        }
    }

    /// The writer thread: take the queued lines in one batch, write them,
    /// repeat. Stops quietly when stderr fails (e.g. EPIPE: the reader left).
    fn drain(&self, mut out: impl Write) {
        let mut batch = Vec::new();
        loop {
            let mut state = self.lock();
            while state.lines.is_empty() && state.dropped == 0 && !state.closing {
                state = self.filled.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            if state.lines.is_empty() && state.dropped == 0 {
                break; // closing, and everything is written
            }
            mem::swap(&mut state.lines, &mut batch);
            let dropped = mem::take(&mut state.dropped);
            drop(state);
            let written = out.write_all(&batch).and_then(|()| match dropped {
                0 => Ok(()),
                n => {
                    let lines = units::plural(n, "log line");
                    writeln!(out, "WARN:logging:{lines} dropped: stderr was not keeping up")
                }
            });
            batch.clear();
            if written.is_err() {
                break;
            }
        }
        let mut state = self.lock();
        state.finished = true;
        state.lines = Vec::new();
        drop(state);
        self.finished.notify_all();
    }

    /// Ask the writer to finish and wait for it, at most `limit`.
    fn close(&self, limit: Duration) {
        let mut state = self.lock();
        state.closing = true;
        self.filled.notify_one();
        let _ = self.finished.wait_timeout_while(state, limit, |s| !s.finished);
    }
}

/// What env_logger writes each formatted line to: the queue.
struct Sink(Arc<Queue>);

impl Write for Sink {
    /// env_logger hands over each record in one `write_all`, so this is one line.
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.0.push(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
