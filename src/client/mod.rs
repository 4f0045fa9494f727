//! The blocking echo client: `progjar client`.
//!
//! It does what the course's `client.py` does — connect, send a message or a
//! file, read the echo in 16-byte pieces, close — and then checks that the echo
//! came back whole, byte for byte, and says so in one summary line on stdout.
//!
//! One run, in the order it happens, one file each:
//! - `source.rs`: what to send (a message, a file, standard input), opened
//!   before touching the network so a missing file costs no connection.
//! - `connect.rs`: resolve the host and try each address; a failure becomes one
//!   line that says what to try.
//! - `exchange.rs`: a writer thread sends and half-closes while this thread reads
//!   the echo (the module says why both are needed); `progress.rs` logs it.
//! - `check.rs`: compares the echo with what was sent, in bounded memory.
//! - `verdict.rs`: what happened, decided once; the summary line and the exit
//!   status are both read from it.
//!
//! # Exit codes
//!
//! The table is in [`crate::cli`]: 0 complete and identical, 1 other failure,
//! 2 usage, 3 refused, 4 unresolved, 5 timed out, 6 echo short or different,
//! 7 file unreadable.

mod check;
mod connect;
mod exchange;
mod progress;
mod source;
mod verdict;

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::Failure;

pub use connect::REFUSED_HINT;
pub use exchange::{BLOCK_SIZE, QUEUE_BLOCKS};
pub use progress::{PIECES_OF_UNKNOWN_SIZE, PIECE_LOG_LIMIT, PROGRESS_EVERY};

/// The course client's message: 46 bytes.
pub const DEFAULT_MESSAGE: &str = "INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ";

/// What to send.
#[derive(Debug, Clone)]
pub enum Payload {
    /// A message: any bytes, sent as they are.
    Message(Vec<u8>),
    /// A file's content; `-` is standard input.
    File(PathBuf),
}

/// The client's settings, from `progjar client`'s command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Host name or address of the server (any bytes, as given).
    pub host: OsString,
    /// Server port.
    pub port: u16,
    /// What to send.
    pub payload: Payload,
    /// Bytes asked of each read of the echo.
    pub chunk: usize,
    /// Connect and read timeout.
    pub timeout: Duration,
}

/// Send the payload, read the echo, verify it, print the summary line.
pub fn run(config: Config) -> Result<(), Failure> {
    let source = source::Source::open(&config.payload)?;
    let stream = connect::connect(&config.host, config.port, config.timeout)?;
    let transfer = exchange::exchange(stream, source, config.chunk, config.timeout)?;
    let verdict = verdict::Verdict::of(&transfer);
    print_summary(&verdict.summary(&transfer));
    verdict.into_result(&transfer)
}

/// Print the summary on stdout, where scripts read it.
fn print_summary(line: &str) {
    // If stdout is closed (`| head -0`) there is nobody to tell; the exit code still says it all.
    let _ = writeln!(io::stdout().lock(), "{line}");
}

/// A duration in seconds, the way the command line takes it: `10 s`, `2.5 s`.
fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}
