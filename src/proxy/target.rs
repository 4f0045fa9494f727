//! The real server behind the proxy (`--to HOST:PORT`): looked up once, at
//! start, and connected to, without waiting, for each client.
//!
//! A name lookup can take seconds (glibc waits for each name server in turn),
//! and the loop's thread must never wait: so `--to` is resolved before the
//! loop starts, with a time bound, and every client is relayed to that one
//! address. Each connect is nonblocking: `connect(2)` returns `EINPROGRESS`
//! at once, and the kernel reports the outcome as the socket becoming
//! writable (connected) or as an error (refused, unreachable). Meanwhile the
//! client's bytes wait in its socket's receive queue, bounded by the kernel.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;

use mio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

use crate::cli::{Failure, EXIT_UNRESOLVED, EXIT_USAGE};
use crate::client::Target;
use crate::resolve;

/// `--to`'s server as written: a host and a port, which it must have (there
/// is no default server port to relay to).
pub fn parse(arg: &std::ffi::OsStr) -> Result<Target, String> {
    // Port 0 here means "none was written" (a written 0 is refused by the parser).
    let target = Target::parse(arg, 0)?;
    if target.port == 0 {
        let example = Target { port: 10000, ..target }.label();
        return Err(format!("--to needs the server's port too: HOST:PORT, e.g. {example}"));
    }
    Ok(target)
}

/// The address to relay to: `target`'s first IPv4 address (else its first),
/// as the server's `--bind` picks, looked up once with a time bound.
pub fn resolve(target: &Target) -> Result<SocketAddr, Failure> {
    let addrs =
        resolve::tcp_addresses(&target.host, target.port, resolve::LOOKUP_LIMIT).map_err(|e| {
            Failure::new(EXIT_UNRESOLVED, format!("cannot resolve {}: {e}", target.label()))
        })?;
    let first = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first());
    first
        .copied()
        .ok_or_else(|| Failure::new(EXIT_USAGE, format!("{} has no address", target.label())))
}

/// Begin connecting to `target` without waiting: the socket, and the error if
/// the kernel refused at once (no route, no local port left). A socket that
/// cannot even be made (out of descriptors) is an error of its own.
pub fn connect(target: SocketAddr) -> io::Result<(TcpStream, io::Result<()>)> {
    let socket = Socket::new(Domain::for_address(target), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    // Small pieces go on at once, as the echo server sends its echoes.
    let _ = socket.set_tcp_nodelay(true);
    let started = match socket.connect(&target.into()) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
        Err(e) => Err(e),
    };
    Ok((TcpStream::from_std(socket.into()), started))
}

/// Has the connect of `socket` finished? `Ok(true)` connected, `Ok(false)` not
/// yet (the event was for something else), an error when it failed. mio's way:
/// the error first, then whether the socket has a peer.
pub fn connected(socket: &TcpStream) -> io::Result<bool> {
    if let Some(e) = socket.take_error()? {
        return Err(e);
    }
    match socket.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<(String, u16), String> {
        parse(std::ffi::OsStr::new(s)).map(|t| (t.host.to_string_lossy().into_owned(), t.port))
    }

    #[test]
    fn to_needs_a_host_and_a_port() {
        assert_eq!(p("127.0.0.1:10000"), Ok(("127.0.0.1".into(), 10000)));
        assert_eq!(p("[::1]:12000"), Ok(("::1".into(), 12000)));
        assert!(p("mesin1").unwrap_err().contains("mesin1:10000"), "{:?}", p("mesin1"));
        assert!(p("mesin1:0").unwrap_err().contains("any free port"));
    }
}
