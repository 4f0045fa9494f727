//! Facts about TCP sockets that every progjar loop relies on, written down once.
//!
//! The server (`connection.rs`), the client and the stress tool all read and
//! write sockets; the rules for what an error means and when a read may stop
//! early are the same for all three, so they live here.

use std::io::{self, ErrorKind};

/// Does this error mean the peer is gone (it reset or closed the connection)?
///
/// A reset (`ECONNRESET`), a write after the peer closed (`EPIPE`, which Rust
/// sees because it ignores SIGPIPE), a connection aborted before it was taken,
/// or a socket no longer connected: each ends the conversation, and none is a
/// fault of ours. Callers close that one connection and report "the peer left"
/// rather than an error.
pub fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset
            | ErrorKind::BrokenPipe
            | ErrorKind::ConnectionAborted
            | ErrorKind::NotConnected
    )
}

/// May a loop stop reading after a read of `n` bytes into a buffer of `asked`
/// bytes, without reading on until `WouldBlock`?
///
/// Edge-triggered readiness reports a change once, so the portable rule is to
/// read until the kernel says `WouldBlock`. On Linux a read that returns fewer
/// bytes than asked has emptied the socket's receive queue, and epoll raises a
/// new edge for every segment that arrives after it, so the last `read` would
/// only be told "nothing": skipping it saves one system call per message
/// (tokio skips it the same way). An end of stream already reported by the
/// same event raises no new edge, so a caller that knows a FIN is queued (or
/// resumes reading after a pause, when no event announces what is queued) must
/// not take this shortcut. Elsewhere the answer is always no.
pub fn short_read_empties_queue(n: usize, asked: usize) -> bool {
    cfg!(target_os = "linux") && n < asked
}
