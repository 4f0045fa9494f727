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
//! [`init_nonblocking`]: each formatted line goes to a lossy background writer
//! (`background.rs`), and its thread does the waiting on stderr. When its
//! queue is full, lines are dropped and counted, and the count is written
//! (`N log lines dropped`) as soon as stderr takes lines again.

use std::io::{self, Write};
use std::process::ExitCode;
use std::thread;

use crate::background::{self, Writer};
use crate::cli::{self, Failure};
use crate::units;

/// Bytes of log lines waiting for stderr before new lines are dropped: a
/// couple of thousand lines, a burst a terminal prints in a blink. The writer
/// holds one more batch of this size while it writes, so the log's memory
/// stays under twice this, however stuck stderr is.
pub const QUEUE_BYTES: usize = 256 * 1024;

/// Start logging to stderr at level `info`, or at whatever `RUST_LOG` says;
/// a write waits for stderr, as usual. For the client and `info`.
pub fn init() -> LogQueue {
    builder().init();
    LogQueue(None)
}

/// Start logging like [`init`], but through the bounded queue described at the
/// top of this file. For the server; keep the handle to flush at exit.
pub fn init_nonblocking() -> LogQueue {
    // Without its thread (or its memory) the queue would only fill and drop:
    // log to stderr directly then, since there is nothing better to do with a line.
    let Ok(writer) = Writer::start("log", QUEUE_BYTES, Stderr) else { return init() };
    builder().target(env_logger::Target::Pipe(Box::new(Sink(writer.clone())))).init();
    LogQueue(Some(writer))
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
/// rustls's own warnings are left out: a client can make it warn at will (an
/// out-of-order handshake message), once per connection and unthrottled, and
/// the server's close line says the same in words (`tls_echo.rs`).
fn builder() -> env_logger::Builder {
    let filter = env_logger::Env::default().default_filter_or("info,rustls=error");
    let mut builder = env_logger::Builder::from_env(filter);
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
pub struct LogQueue(Option<Writer>);

impl LogQueue {
    /// End the server like [`cli::finish`] does, but with the failure line
    /// sent through the queue, and the queue flushed for at most
    /// [`background::EXIT_WAIT`].
    pub fn finish(self, result: Result<(), Failure>) -> ExitCode {
        let Some(writer) = self.0 else { return cli::finish(result) };
        let (code, last) = match result {
            Ok(()) => (ExitCode::SUCCESS, String::new()),
            Err(failure) => {
                (ExitCode::from(failure.code), format!("{}\n", cli::error_line(&failure)))
            }
        };
        writer.finish(last.as_bytes(), u64::from(!last.is_empty()));
        code
    }
}

/// The log writer's output: stderr. It stops quietly when stderr fails (e.g.
/// EPIPE: the reader left), since there is nowhere left to say so.
struct Stderr;

impl background::Output for Stderr {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        io::stderr().write_all(bytes)
    }

    fn dropped(&mut self, n: u64) -> io::Result<()> {
        let lines = units::plural(n, "log line");
        writeln!(io::stderr(), "WARN:logging:{lines} dropped: stderr was not keeping up")
    }
}

/// What env_logger writes each formatted line to: the queue.
struct Sink(Writer);

impl Write for Sink {
    /// env_logger hands over each record in one `write_all`, so this is one line.
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.0.push(line, 1);
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
