//! What the client logs while the echo comes back: each piece, like the
//! course's client, while that is readable; a progress line once it is not.

use std::time::{Duration, Instant};

use log::{debug, info};

use crate::preview::preview;
use crate::units::{grouped, plural, secs};

/// Largest payload of known size whose echo is logged piece by piece: 4 KiB is
/// 256 lines at the default 16-byte chunk, still readable; beyond that, one
/// progress line per [`PROGRESS_EVERY`] (every piece stays visible with
/// `RUST_LOG=debug`).
pub const PIECE_LOG_LIMIT: u64 = 4 * 1024;

/// Pieces logged when the payload's size is unknown (standard input, a pipe):
/// enough to see the echo start; a long stream of binary-looking pieces would
/// only push everything else off the screen.
pub const PIECES_OF_UNKNOWN_SIZE: u64 = 8;

/// How often progress is logged for payloads larger than [`PIECE_LOG_LIMIT`]:
/// once a second shows that things move without flooding the terminal.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Logs each piece of a small echo, or progress for a large one.
pub(super) struct Progress {
    /// The payload's size, if known.
    total: Option<u64>,
    /// Nothing at info level.
    quiet: bool,
    /// Log every piece (small payloads) rather than progress.
    pieces: bool,
    /// Pieces logged so far.
    logged: u64,
    next_report: Instant,
}

impl Progress {
    /// `quiet`: log pieces at debug level only (the echo is shown on stdout).
    pub(super) fn new(total: Option<u64>, quiet: bool) -> Progress {
        Progress {
            total,
            quiet,
            pieces: total.is_none_or(|t| t <= PIECE_LOG_LIMIT),
            logged: 0,
            next_report: Instant::now() + PROGRESS_EVERY,
        }
    }

    /// Log one piece; `received` counts it.
    pub(super) fn piece(&mut self, piece: &[u8], received: u64) {
        if self.quiet {
            debug!("{}", preview(piece));
            return;
        }
        if self.pieces && self.total.is_none() && self.logged == PIECES_OF_UNKNOWN_SIZE {
            self.pieces = false;
            info!(
                "{PIECES_OF_UNKNOWN_SIZE} pieces shown; from here on, progress every {} \
                 (RUST_LOG=debug shows every piece)",
                secs(PROGRESS_EVERY)
            );
        }
        if self.pieces {
            self.logged += 1;
            info!("{}", preview(piece));
            return;
        }
        debug!("{}", preview(piece));
        let now = Instant::now();
        if now >= self.next_report {
            self.next_report = now + PROGRESS_EVERY;
            match self.total {
                Some(t) => info!(
                    "received {} of {} ({}%)",
                    grouped(received),
                    plural(t, "byte"),
                    received * 100 / t.max(1)
                ),
                None => info!("received {}", plural(received, "byte")),
            }
        }
    }
}
