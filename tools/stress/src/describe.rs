//! An I/O error in words a student can look up: the errno name they will meet
//! in `man` pages, and whether it means the server is gone. Shared by the
//! connections (`conn.rs`) and the opener (`open.rs`).

use std::io;

use progjar::sock::is_peer_gone;

/// An I/O error in words, with the errno name students will meet in `man` pages.
/// Which errors mean "the server is gone" is progjar's rule (`sock::is_peer_gone`).
pub fn describe(e: &io::Error) -> String {
    let gone = if is_peer_gone(e) { "the server reset or closed the connection: " } else { "" };
    match errno_name(e) {
        Some(name) => format!("{gone}{name} [{e}]"),
        None => format!("{gone}{e}"),
    }
}

/// The errno names a connection here can meet.
fn errno_name(e: &io::Error) -> Option<&'static str> {
    Some(match e.raw_os_error()? {
        libc::ECONNREFUSED => "ECONNREFUSED: nothing listens there",
        libc::ECONNRESET => "ECONNRESET",
        libc::EPIPE => "EPIPE",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        _ => return None,
    })
}
