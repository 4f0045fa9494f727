//! How a relayed connection ends before both its directions have: the connect
//! to the realserver failed, a leg's socket failed (a reset, a peer gone), or
//! a leg's TLS failed. Either way the other side is reset, so that each side
//! sees what it would have seen talking to the other directly, and one line
//! says why.

use std::io;

use super::RelayConnection;
use crate::event_loop::{Closed, Next, Turn};
use crate::proxy::leg::Side;
use crate::proxy::secure::{Broke, Failed};
use crate::proxy::words;

/// Why a relayed connection ends before both its directions have.
#[derive(Debug)]
pub(super) enum Ended {
    /// The connect to the realserver failed or took too long.
    Connect(io::Error),
    /// A leg's socket failed: its peer reset, or is gone.
    Leg(Side, io::Error),
    /// A leg's TLS failed (intercepting).
    Tls(Side, Failed),
}

impl Ended {
    /// What broke on `side`, as the end of the connection.
    pub(super) fn on(side: Side, broke: Broke) -> Ended {
        match broke {
            Broke::Io(e) => Ended::Leg(side, e),
            Broke::Tls(failed) => Ended::Tls(side, failed),
        }
    }
}

impl RelayConnection {
    /// End the connection early: both legs reset (a leg whose TLS failed
    /// gets its alert and its FIN instead), one line saying why.
    pub(super) fn abort(&mut self, ended: Ended, turn: &mut Turn<'_>) -> Next {
        let failed = match &ended {
            Ended::Tls(side, _) => Some(*side),
            _ => None,
        };
        for side in Side::BOTH.into_iter().filter(|&side| Some(side) != failed) {
            self.leg(side).reset_on_close();
        }
        match ended {
            Ended::Tls(side, failed) => {
                if let (Side::Server, Some(why)) = (side, &failed.why) {
                    words::tls_failed(turn.lines, self.peer, why);
                }
                Next::Close(Closed::Tls(failed.reason))
            }
            Ended::Connect(e) => {
                words::cannot_connect(turn.lines, self.peer, &e);
                Next::Close(Closed::Error(e.kind()))
            }
            Ended::Leg(side, e) => {
                words::reset(turn.lines, self.peer, side, &e);
                Next::Close(Closed::from_error(&e))
            }
        }
    }
}
