//! The checker: compares the echo, piece by piece, with the blocks the writer queued.
//!
//! It holds one block at a time and takes the next off the queue when the echo
//! reaches it, so memory is bounded by the queue whatever the payload size.

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A block of the payload, shared by the writer (which sends it) and the reader
/// (which compares the echo with it).
pub(super) type Block = Arc<Sent>;

/// Bytes the writer sent, and when it queued them (just before sending).
#[derive(Debug)]
pub(super) struct Sent {
    pub bytes: Vec<u8>,
    pub queued: Instant,
}

impl Sent {
    pub(super) fn new(bytes: Vec<u8>) -> Block {
        Arc::new(Sent { bytes, queued: Instant::now() })
    }
}

/// The first byte of the echo that is not what we sent.
#[derive(Debug, Clone, Copy)]
pub(super) struct Difference {
    pub offset: u64,
    /// What we sent at `offset`; `None` if we sent nothing there (an extra byte).
    pub sent: Option<u8>,
    pub received: u8,
}

/// What the server owes us, as far as the reader can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    /// Bytes we sent and it has not echoed yet.
    Echo,
    /// Nothing: all sent was echoed, and the writer is waiting for its source.
    Input,
    /// Its close: the writer is done and all it sent was echoed.
    Close,
}

/// Compares the echo with the blocks the writer queued.
pub(super) struct Checker {
    blocks: Receiver<Block>,
    /// The block the echo is in, and how far it has been matched.
    block: Block,
    pos: usize,
    received: u64,
    difference: Option<Difference>,
    /// The writer has returned (the queue is disconnected): no more blocks will come.
    writer_finished: bool,
    /// Longest wait for a block (only reached with a misbehaving peer or a stalled source).
    wait: Duration,
    /// The longest a block took from being sent to its last byte's echo.
    slowest: Option<Duration>,
}

impl Checker {
    pub(super) fn new(blocks: Receiver<Block>, wait: Duration) -> Checker {
        Checker {
            blocks,
            block: Sent::new(Vec::new()),
            pos: 0,
            received: 0,
            difference: None,
            writer_finished: false,
            wait,
            slowest: None,
        }
    }

    /// Bytes of echo compared so far.
    pub(super) fn received(&self) -> u64 {
        self.received
    }

    /// The longest a block took from being sent to its echo's last byte (for
    /// typed lines: a line's round trip).
    pub(super) fn slowest(&self) -> Option<Duration> {
        self.slowest
    }

    /// The first byte that differs, if any.
    pub(super) fn difference(&self) -> Option<Difference> {
        self.difference
    }

    /// The echo has a byte beyond anything the writer queued.
    pub(super) fn is_longer(&self) -> bool {
        self.difference.is_some_and(|d| d.sent.is_none())
    }

    /// The writer has returned: every block it will ever send has been taken.
    pub(super) fn writer_finished(&self) -> bool {
        self.writer_finished
    }

    /// Compare one piece of the echo with what was sent. Stops at the first
    /// byte beyond what was sent (see [`Checker::is_longer`]).
    pub(super) fn compare(&mut self, mut piece: &[u8]) {
        // Bounded: every pass consumes at least one byte of `piece`, or returns.
        while !piece.is_empty() {
            if self.pos == self.block.bytes.len() {
                if !self.take_next_block() {
                    self.note_difference(0, None, piece[0]);
                    return;
                }
                continue;
            }
            let expected = &self.block.bytes[self.pos..];
            let n = expected.len().min(piece.len());
            // One memcmp first: a byte-by-byte search would cap a 1 GiB file's speed.
            if expected[..n] != piece[..n] {
                if let Some(i) = (0..n).find(|&i| expected[i] != piece[i]) {
                    self.note_difference(i, Some(expected[i]), piece[i]);
                }
            }
            self.pos += n;
            self.received += n as u64;
            piece = &piece[n..];
            if self.pos == self.block.bytes.len() {
                let took = self.block.queued.elapsed();
                self.slowest = Some(self.slowest.map_or(took, |s| s.max(took)));
            }
        }
    }

    fn note_difference(&mut self, at: usize, sent: Option<u8>, received: u8) {
        if self.difference.is_none() {
            self.difference =
                Some(Difference { offset: self.received + at as u64, sent, received });
        }
    }

    /// Move to the next queued block; false if none comes. It is normally there
    /// already: the writer queues a block before sending it, so its echo cannot
    /// arrive first.
    fn take_next_block(&mut self) -> bool {
        match self.blocks.recv_timeout(self.wait) {
            Ok(block) => {
                self.block = block;
                self.pos = 0;
                true
            }
            // The writer is done: the server sent more than we did.
            Err(RecvTimeoutError::Disconnected) => {
                self.writer_finished = true;
                false
            }
            // The server sent bytes we have not sent (yet), and our source has
            // produced nothing for a whole timeout: treat them as extra bytes.
            Err(RecvTimeoutError::Timeout) => false,
        }
    }

    /// What the server owes us now. Takes the next queued block off the queue
    /// when the current one has been echoed whole, since that block is due too.
    pub(super) fn due(&mut self) -> Due {
        if self.pos < self.block.bytes.len() {
            return Due::Echo;
        }
        match self.blocks.try_recv() {
            Ok(block) => {
                self.block = block;
                self.pos = 0;
                Due::Echo
            }
            Err(TryRecvError::Empty) => Due::Input,
            Err(TryRecvError::Disconnected) => {
                self.writer_finished = true;
                Due::Close
            }
        }
    }

    /// After EOF: how many sent bytes never came back. Waits (at most one timeout)
    /// for the writer to finish, since the server may close right after our FIN,
    /// before the writer thread has returned.
    pub(super) fn missing(&mut self) -> u64 {
        let mut missing = (self.block.bytes.len() - self.pos) as u64;
        let deadline = Instant::now() + self.wait;
        // Bounded by the deadline.
        while !self.writer_finished {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.blocks.recv_timeout(left) {
                Ok(block) => missing += block.bytes.len() as u64,
                Err(RecvTimeoutError::Disconnected) => self.writer_finished = true,
                // The writer is still busy (e.g. reading standard input) although the
                // server has closed: the echo is short whatever comes next.
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn checker_with(blocks: &[&[u8]]) -> Checker {
        let (tx, rx) = mpsc::sync_channel(blocks.len());
        for b in blocks {
            tx.send(Sent::new(b.to_vec())).unwrap();
        }
        drop(tx); // the writer is done
        Checker::new(rx, Duration::from_secs(1))
    }

    #[test]
    fn echo_split_across_blocks_matches() {
        let mut c = checker_with(&[b"INI ADA", b"LAH DATA"]);
        c.compare(b"INI ADALAH");
        c.compare(b" DATA");
        assert!(c.difference.is_none());
        assert_eq!((c.received, c.missing()), (15, 0));
        assert_eq!(c.due(), Due::Close);
    }

    #[test]
    fn first_difference_is_kept() {
        let mut c = checker_with(&[b"abcdef"]);
        c.compare(b"abXdeY");
        assert!(!c.is_longer());
        let d = c.difference.unwrap();
        assert_eq!((d.offset, d.sent, d.received), (2, Some(b'c'), b'X'));
    }

    #[test]
    fn extra_bytes_are_longer() {
        let mut c = checker_with(&[b"abc"]);
        c.compare(b"abcd");
        assert!(c.is_longer());
        let d = c.difference.unwrap();
        assert_eq!((d.offset, d.sent, d.received), (3, None, b'd'));
    }

    #[test]
    fn short_echo_counts_missing_bytes() {
        let mut c = checker_with(&[b"abc", b"def"]);
        c.compare(b"ab");
        assert_eq!(c.due(), Due::Echo);
        assert_eq!(c.missing(), 4);
    }

    #[test]
    fn nothing_due_while_the_writer_waits_for_input() {
        let (tx, rx) = mpsc::sync_channel(1);
        tx.send(Sent::new(b"ab".to_vec())).unwrap();
        let mut c = Checker::new(rx, Duration::from_secs(1));
        c.compare(b"ab");
        assert_eq!(c.due(), Due::Input);
        drop(tx);
        assert_eq!(c.due(), Due::Close);
    }
}
