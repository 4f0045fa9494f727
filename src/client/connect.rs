//! Resolving the host and connecting: every address in turn, one line on failure.

use std::ffi::OsStr;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use log::{debug, info, warn};

use super::secs;
use crate::cli::{Failure, EXIT_FAILURE, EXIT_REFUSED, EXIT_TIMEOUT, EXIT_UNRESOLVED};
use crate::resolve;

/// What a student should try when the connection is refused.
pub const REFUSED_HINT: &str = "is the server running on that port? From another machine, use the \
     server's address (e.g. 172.16.16.101), not localhost";

/// Resolve `host` and connect to the first of its addresses that answers.
pub(super) fn connect(host: &OsStr, port: u16, timeout: Duration) -> Result<TcpStream, Failure> {
    let addrs = resolve(host, port, timeout)?;
    let mut errors: Vec<(SocketAddr, io::Error)> = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        info!("connecting to {addr}");
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                if i + 1 < addrs.len() {
                    warn!("cannot connect to {addr}: {e}; trying the next address");
                }
                errors.push((*addr, e));
            }
        }
    }
    Err(connect_failure(&errors, timeout))
}

/// Every address `host` resolves to (a literal resolves to itself), bounded by `limit`.
fn resolve(host: &OsStr, port: u16, limit: Duration) -> Result<Vec<SocketAddr>, Failure> {
    let name = host.to_string_lossy();
    let addrs = resolve::tcp_addresses(host, port, limit).map_err(|reason| {
        Failure::new(EXIT_UNRESOLVED, format!("cannot resolve {name}: {reason}"))
    })?;
    debug!("{name} resolves to {addrs:?}");
    Ok(addrs)
}

/// One line for the failed attempts. A refusal says most (something answered: no
/// server on that port), then a timeout, then whatever came last.
fn connect_failure(errors: &[(SocketAddr, io::Error)], timeout: Duration) -> Failure {
    let find = |kind: ErrorKind| errors.iter().find(|(_, e)| e.kind() == kind);
    if let Some((addr, _)) = find(ErrorKind::ConnectionRefused) {
        return Failure::new(EXIT_REFUSED, format!("connection refused by {addr}: {REFUSED_HINT}"));
    }
    if let Some((addr, _)) = find(ErrorKind::TimedOut) {
        return Failure::new(
            EXIT_TIMEOUT,
            format!("timed out connecting to {addr} after {}", secs(timeout)),
        );
    }
    match errors.last() {
        Some((addr, e)) => Failure::new(EXIT_FAILURE, format!("cannot connect to {addr}: {e}")),
        None => Failure::new(EXIT_UNRESOLVED, "the host resolves to no address"),
    }
}
