//! The verdict: what happened in one exchange, decided once.
//!
//! The summary line on stdout and the exit status with its error line are both
//! read from the same [`Verdict`], so they can never tell two different stories.

use std::io::{self, ErrorKind};

use super::check::Difference;
use super::echo_file::Saved;
use super::exchange::{ReadEnd, SendError, Transfer, CLOSE_WAIT};
use crate::cli::{Failure, EXIT_ECHO, EXIT_FAILURE, EXIT_FILE, EXIT_INTERRUPTED, EXIT_TIMEOUT};
use crate::preview::preview;
use crate::sock::is_peer_gone;
use crate::units::{byte_rate, grouped, micros, plural, secs};

/// What happened, the most specific reason first.
#[derive(Debug)]
pub(super) enum Verdict<'a> {
    /// The echo is complete and identical.
    Identical,
    /// The echo is complete and identical, but the server did not close within
    /// [`CLOSE_WAIT`] (a relay that drops the half-close): still a success.
    IdenticalNotClosed,
    /// Ctrl-C stopped the exchange.
    Interrupted,
    /// Writing the echo to `--output` failed.
    OutputFailed(&'a io::Error),
    /// Reading the file or standard input failed.
    SourceFailed(&'a io::Error),
    /// No echo came for a whole timeout while bytes were owed.
    NoEcho,
    /// All was echoed, then the server reset the connection instead of closing it.
    ResetAfterEcho(&'a io::Error),
    /// Reading the echo failed (other than the peer leaving).
    ReadFailed(&'a io::Error),
    /// A byte of the echo differs from what was sent.
    Differs(Difference),
    /// The echo has bytes beyond what was sent.
    Longer(u64),
    /// The server took nothing we wrote for a whole timeout.
    SendTimedOut,
    /// Writing to the socket failed (other than the peer leaving).
    SendFailed(&'a io::Error),
    /// The echo was right so far but stopped early; `reset` if the server reset.
    Short { reset: Option<&'a io::Error> },
}

impl<'a> Verdict<'a> {
    /// Decide what `t` amounts to.
    pub(super) fn of(t: &'a Transfer) -> Verdict<'a> {
        // Everything sent (and the FIN) went out, and came back unchanged.
        let all_echoed =
            matches!(t.send, Some(Ok(_))) && t.difference.is_none() && t.received == t.sent;
        match &t.read_end {
            ReadEnd::Closed if all_echoed && t.missing == 0 => return Verdict::Identical,
            ReadEnd::NotClosed if all_echoed => return Verdict::IdenticalNotClosed,
            _ if t.interrupted.is_some() => return Verdict::Interrupted,
            ReadEnd::OutputFailed(e) => return Verdict::OutputFailed(e),
            ReadEnd::PeerGone(e) if all_echoed => return Verdict::ResetAfterEcho(e),
            _ => {}
        }
        if let Some(Err(SendError::Source(e))) = &t.send {
            return Verdict::SourceFailed(e);
        }
        match &t.read_end {
            ReadEnd::TimedOut => return Verdict::NoEcho,
            ReadEnd::Failed(e) => return Verdict::ReadFailed(e),
            ReadEnd::Closed | ReadEnd::PeerGone(_) | ReadEnd::Longer | ReadEnd::NotClosed => {}
            ReadEnd::OutputFailed(_) => {}
        }
        match t.difference {
            Some(d @ Difference { sent: Some(_), .. }) => return Verdict::Differs(d),
            Some(d) => return Verdict::Longer(d.offset),
            None => {}
        }
        if let Some(Err(SendError::Socket(e))) = &t.send {
            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                return Verdict::SendTimedOut;
            }
            if !is_peer_gone(e) {
                return Verdict::SendFailed(e);
            }
        }
        let reset = match &t.read_end {
            ReadEnd::PeerGone(e) => Some(e),
            _ => None,
        };
        Verdict::Short { reset }
    }

    /// The echo is complete and identical: the output file may take its name.
    pub(super) fn is_success(&self) -> bool {
        matches!(self, Verdict::Identical | Verdict::IdenticalNotClosed)
    }

    /// One line: sent, received, what happened, time, throughput, and where the echo is.
    pub(super) fn summary(&self, t: &Transfer, saved: Option<&Saved>) -> String {
        let at = |offset: u64| format!("at offset {}", grouped(offset));
        let status = match self {
            Verdict::Identical | Verdict::IdenticalNotClosed => "identical".to_string(),
            Verdict::Interrupted => format!("interrupted {}", at(t.received)),
            Verdict::OutputFailed(_) => format!("writing the echo failed {}", at(t.received)),
            Verdict::SourceFailed(_) => {
                format!("source unreadable after {}", plural(t.sent, "byte"))
            }
            Verdict::NoEcho => format!("timed out {}", at(t.received)),
            Verdict::ResetAfterEcho(_) => "complete, then reset".to_string(),
            Verdict::ReadFailed(_) => format!("read failed {}", at(t.received)),
            Verdict::Differs(d) => format!("different from offset {}", grouped(d.offset)),
            Verdict::Longer(offset) => {
                format!("longer: extra bytes from offset {}", grouped(*offset))
            }
            Verdict::SendTimedOut => format!("timed out sending {}", at(t.sent)),
            Verdict::SendFailed(_) => format!("sending failed {}", at(t.sent)),
            Verdict::Short { .. } => format!("short: echo ends {}", at(t.received)),
        };
        let seconds = t.elapsed.as_secs_f64();
        // Typed lines spend the time waiting for the typist: how fast each
        // line came back says something, bytes per second of typing does not.
        let speed = match t.slowest_echo {
            Some(slowest) if t.typed => {
                format!("slowest echo {}", micros(slowest.as_micros() as u64))
            }
            _ => byte_rate(t.received, seconds),
        };
        let mut line = format!(
            "sent {}, received {}, {status}, {seconds:.3} s, {speed}",
            plural(t.sent, "byte"),
            plural(t.received, "byte"),
        );
        if let Verdict::IdenticalNotClosed = self {
            line.push_str(&format!(
                "; the server never closed the connection (we waited {} after the complete echo)",
                secs(CLOSE_WAIT.min(t.timeout))
            ));
        }
        if let Some(saved) = saved {
            line.push_str(&saved.words());
        }
        line
    }

    /// `Ok` if identical, otherwise the failure's exit status and one line.
    pub(super) fn into_result(self, t: &Transfer) -> Result<(), Failure> {
        let (code, message) = match self {
            Verdict::Identical | Verdict::IdenticalNotClosed => return Ok(()),
            Verdict::Interrupted => (
                EXIT_INTERRUPTED,
                format!(
                    "interrupted ({}): received {} of {} sent",
                    t.interrupted.unwrap_or("Ctrl-C"),
                    grouped(t.received),
                    plural(t.sent, "byte")
                ),
            ),
            Verdict::OutputFailed(e) => {
                let name = t.output_file.as_deref().unwrap_or("standard output");
                (EXIT_FILE, format!("cannot write {name}: {e}"))
            }
            Verdict::SourceFailed(e) => (EXIT_FILE, format!("cannot read {}: {e}", t.source_name)),
            Verdict::NoEcho => (
                EXIT_TIMEOUT,
                format!(
                    "timed out: no echo for {} (received {} of {} sent){}",
                    secs(t.timeout),
                    grouped(t.received),
                    plural(t.sent, "byte"),
                    busy_hint(t)
                ),
            ),
            Verdict::ResetAfterEcho(e) => (
                EXIT_ECHO,
                format!(
                    "the echo came back complete ({} of {}), but then the server reset the \
                     connection instead of closing it ({e})",
                    grouped(t.received),
                    plural(t.sent, "byte")
                ),
            ),
            Verdict::ReadFailed(e) => (EXIT_FAILURE, format!("reading the echo failed: {e}")),
            Verdict::Differs(d) => (EXIT_ECHO, difference_message(d)),
            Verdict::Longer(offset) => (
                EXIT_ECHO,
                format!(
                    "echo longer than what was sent: extra bytes from offset {}",
                    grouped(offset)
                ),
            ),
            Verdict::SendTimedOut => (
                EXIT_TIMEOUT,
                format!(
                    "timed out sending: the server took nothing for {}{}",
                    secs(t.timeout),
                    busy_hint(t)
                ),
            ),
            Verdict::SendFailed(e) => (EXIT_FAILURE, format!("sending failed: {e}")),
            Verdict::Short { reset } => (EXIT_ECHO, short_message(reset, t)),
        };
        Err(Failure::new(code, message))
    }
}

/// Connected, yet nothing came back. Connecting proves less than it seems: the
/// server's kernel completes the handshake into the listen backlog by itself,
/// before (and whether or not) the program calls accept(). The course's
/// iterative server leaves a second client there while it serves the first (task 4).
fn busy_hint(t: &Transfer) -> &'static str {
    if t.received > 0 {
        return "";
    }
    "; the connection opened, as the server's kernel completes the handshake even before the \
     program accepts it, but nothing came back: the server may be busy with another client (an \
     iterative server, like the course's, serves one at a time)"
}

fn difference_message(d: Difference) -> String {
    let sent = d.sent.map_or_else(|| "nothing".to_string(), |b| preview(&[b]).to_string());
    format!(
        "echo differs at offset {}: sent {sent}, received {}",
        grouped(d.offset),
        preview(&[d.received])
    )
}

fn short_message(reset: Option<&io::Error>, t: &Transfer) -> String {
    let how = match reset {
        Some(e) => format!("the connection was reset ({e})"),
        None => "the server closed the connection".to_string(),
    };
    format!(
        "echo short: {how} after {} of {} sent; the first missing byte is at offset {}",
        grouped(t.received),
        plural(t.sent, "byte"),
        grouped(t.received)
    )
}
