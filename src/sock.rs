//! Facts about TCP sockets that every progjar loop relies on, written down once.
//!
//! The server (`server/echo.rs`), the client and the stress tool all read and
//! write sockets; the rules for what an error means and when a read may stop
//! early are the same for all three, so they live here.

use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;

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

/// What waits in a socket's kernel queues: bytes received that nobody has read
/// yet (`FIONREAD`), and bytes sent that the peer has not acknowledged
/// (`SIOCOUTQ`). For deciding whether a quiet connection is idle; a couple of
/// system calls, so asked only when a timer runs out, never per event.
pub fn queued(socket: &impl AsRawFd) -> io::Result<(u32, u32)> {
    let queue = |request| {
        let mut bytes: libc::c_int = 0;
        // SAFETY: FIONREAD and TIOCOUTQ (SIOCINQ/SIOCOUTQ on a socket) write
        // one int through the pointer, to a local we own. No safe wrapper
        // exists: nix has no ioctl for these two.
        match unsafe { libc::ioctl(socket.as_raw_fd(), request, &mut bytes) } {
            0 => Ok(u32::try_from(bytes).unwrap_or(0)),
            _ => Err(io::Error::last_os_error()),
        }
    };
    Ok((queue(libc::FIONREAD)?, queue(libc::TIOCOUTQ)?))
}

/// What every client socket of a loop gets at accept: no Nagle delay (a
/// small echo or relayed piece goes at once, not after the previous one is
/// acknowledged), and urgent (`MSG_OOB`) bytes kept in the stream, so they
/// are echoed or relayed in place (out of it, a TLS record would break).
/// Either failing only makes the service slower or loses urgent bytes, so
/// neither refuses the client.
pub fn serve_at_once(socket: &mio::net::TcpStream) {
    let _ = socket.set_nodelay(true);
    let _ = socket2::SockRef::from(socket).set_out_of_band_inline(true);
}
