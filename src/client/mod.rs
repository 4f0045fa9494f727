//! The blocking echo client: `progjar client`.
//!
//! It does what the course's `client.py` does — connect, send a message or a
//! file, read the echo in 16-byte pieces, close — and then checks that the echo
//! came back whole, byte for byte, and says so in one summary line on stdout.
//! It also does the course's assignment variants in one command: a generated
//! message of any size (`--size 2MB`), the echo written to a file (`--output`),
//! several servers (`HOST1 HOST2`, `--parallel`), and typing lines as with
//! ncat (`--interactive`).
//!
//! One run, in the order it happens, one file each:
//! - `target.rs`: a server on the command line, `HOST`, `HOST:PORT`, `[v6]:PORT`.
//! - `servers.rs`: one exchange per server, in turn or in parallel; the worst
//!   exit status wins.
//! - `source.rs`: what to send (a message, a file, standard input, a generated
//!   message), opened before touching the network so a missing file costs no
//!   connection; `output.rs`: where the echo is written, if anywhere, after
//!   `same_file.rs` has made sure that is not the file being sent;
//!   `echo_file.rs`: a file takes its name only once the echo is complete and
//!   identical; `screen.rs`: `-i` marks the echo apart from the typed lines.
//! - `connect.rs`: resolve the host and try each address; a failure becomes one
//!   line that says what to try.
//! - `tls.rs`: with `--tls`, the handshake (bounded by `--timeout`), the
//!   certificate checked as `--ca` or `--insecure` says, and what was agreed
//!   logged; `link.rs`: the exchange's two ends on one TLS connection, without
//!   a lock held across a socket call.
//! - `exchange.rs`: a writer thread sends and half-closes while this thread reads
//!   the echo (the module says why both are needed); `progress.rs` logs it.
//! - `check.rs`: compares the echo with what was sent, in bounded memory.
//! - `verdict.rs`: what happened, decided once; the summary line and the exit
//!   status are both read from it.
//! - `interrupt.rs`: Ctrl-C (or SIGTERM, SIGHUP) ends the exchange with the summary so far.
//!
//! # Exit codes
//!
//! The table is in [`crate::cli`]: 0 complete and identical, 1 other failure,
//! 2 usage, 3 refused, 4 unresolved, 5 timed out, 6 echo short or different,
//! 7 file unreadable (or `--output` unwritable), 9 a TLS check failed, 130
//! Ctrl-C. With several
//! servers, the highest of their statuses. `--output` naming the file being
//! sent is a usage error (2); a summary that cannot be written is 1.

mod check;
mod connect;
mod echo_file;
mod exchange;
mod interrupt;
mod link;
mod output;
mod progress;
mod same_file;
mod screen;
mod servers;
mod source;
mod target;
mod tls;
mod verdict;

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::Failure;

pub use connect::REFUSED_HINT;
pub use exchange::{BLOCK_SIZE, CLOSE_WAIT, QUEUE_BLOCKS};
pub use progress::{PIECES_OF_UNKNOWN_SIZE, PIECE_LOG_LIMIT, PROGRESS_EVERY};
pub use screen::MARK;
pub use servers::COURSE_CHUNK;
pub use source::generated;
pub use target::{server_port, Target};
// Written once in `tls/client.rs` for this client and the stress tool.
pub use crate::tls::{TlsOptions, INSECURE_WARNING};

/// The course client's message: 46 bytes.
pub const DEFAULT_MESSAGE: &str = "INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ";

/// What to send.
#[derive(Debug, Clone)]
pub enum Payload {
    /// A message: any bytes, sent as they are.
    Message(Vec<u8>),
    /// A file's content; `-` is standard input.
    File(PathBuf),
    /// `--size`: this many bytes of the course's message, one per line (see [`generated`]).
    Generated(u64),
    /// `--interactive`: lines typed on standard input, each echo printed as it comes.
    Interactive,
}

/// The client's settings, from `progjar client`'s command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// The servers, in the order given (at least one).
    pub targets: Vec<Target>,
    /// What to send.
    pub payload: Payload,
    /// Where to write the echo as it arrives; `-` is stdout.
    pub output: Option<PathBuf>,
    /// Bytes asked of each read of the echo; `None` picks (see `servers.rs`).
    pub chunk: Option<usize>,
    /// Connect and read timeout.
    pub timeout: Duration,
    /// Send to every server at once rather than in turn.
    pub parallel: bool,
    /// `--tls`: TLS over the connection, and what to trust.
    pub tls: Option<TlsOptions>,
}

/// Send the payload to each server, read the echo, verify it, print the summaries.
pub fn run(config: Config) -> Result<(), Failure> {
    interrupt::install()?;
    let tls = config.tls.as_ref().map(tls::Tls::new).transpose()?;
    servers::run_all(&config, tls.as_ref())
}
