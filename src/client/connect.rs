//! Resolving the host and connecting: every address in turn, one line on failure.

use std::ffi::OsStr;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use log::{debug, info, warn};

use crate::cli::{Failure, EXIT_FAILURE, EXIT_REFUSED, EXIT_TIMEOUT, EXIT_UNRESOLVED};
use crate::resolve;
use crate::units::secs;

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

/// What to try when IPv6 is refused: the server may listen on IPv4 only.
pub const REFUSED_IPV6_HINT: &str = "a server bound to 0.0.0.0 (the default) listens on IPv4 \
     only: start it with --bind :: (IPv6 and IPv4), or connect to its IPv4 address";

/// One line for the failed attempts, naming every address tried. A refusal says
/// most (something answered: no server on that port), then a timeout, then the rest.
fn connect_failure(errors: &[(SocketAddr, io::Error)], timeout: Duration) -> Failure {
    let with = |kind: ErrorKind| -> Vec<SocketAddr> {
        errors.iter().filter(|(_, e)| e.kind() == kind).map(|(a, _)| *a).collect()
    };
    let (refused, timed_out) = (with(ErrorKind::ConnectionRefused), with(ErrorKind::TimedOut));
    let (code, named, mut line, hint) = if !refused.is_empty() {
        let hint =
            if refused.iter().all(SocketAddr::is_ipv6) { REFUSED_IPV6_HINT } else { REFUSED_HINT };
        let line = format!("connection refused by {}", list(&refused));
        (EXIT_REFUSED, refused, line, hint)
    } else if !timed_out.is_empty() {
        let line = format!("timed out connecting to {} after {}", list(&timed_out), secs(timeout));
        (EXIT_TIMEOUT, timed_out, line, "")
    } else if let Some((addr, e)) = errors.first() {
        (EXIT_FAILURE, vec![*addr], format!("cannot connect to {addr}: {e}"), "")
    } else {
        return Failure::new(EXIT_UNRESOLVED, "the host resolves to no address");
    };
    let others: Vec<String> = (errors.iter())
        .filter(|(a, _)| !named.contains(a))
        .map(|(a, e)| format!("{a}: {e}"))
        .collect();
    if !others.is_empty() {
        line.push_str(&format!(" (also tried {})", others.join("; ")));
    }
    if !hint.is_empty() {
        line.push_str(&format!(": {hint}"));
    }
    Failure::new(code, line)
}

/// `a`, `a and b`, `a, b and c`.
fn list(addrs: &[SocketAddr]) -> String {
    let names: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ErrorKind) -> io::Error {
        io::Error::from(kind)
    }

    #[test]
    fn every_refused_address_is_named() {
        let errors = [
            ("[::1]:7".parse().unwrap(), err(ErrorKind::ConnectionRefused)),
            ("127.0.0.1:7".parse().unwrap(), err(ErrorKind::ConnectionRefused)),
        ];
        let f = connect_failure(&errors, Duration::from_secs(1));
        assert_eq!(f.code, EXIT_REFUSED);
        assert_eq!(
            f.message,
            format!("connection refused by [::1]:7 and 127.0.0.1:7: {REFUSED_HINT}")
        );
    }

    #[test]
    fn ipv6_only_refusal_suggests_bind_any() {
        let errors = [("[::1]:7".parse().unwrap(), err(ErrorKind::ConnectionRefused))];
        let f = connect_failure(&errors, Duration::from_secs(1));
        assert_eq!(f.message, format!("connection refused by [::1]:7: {REFUSED_IPV6_HINT}"));
    }

    #[test]
    fn other_failures_are_named_too() {
        let errors = [
            ("[fd00::1]:7".parse().unwrap(), err(ErrorKind::HostUnreachable)),
            ("127.0.0.1:7".parse().unwrap(), err(ErrorKind::ConnectionRefused)),
        ];
        let f = connect_failure(&errors, Duration::from_secs(1));
        assert_eq!(
            f.message,
            format!(
                "connection refused by 127.0.0.1:7 (also tried [fd00::1]:7: {}): {REFUSED_HINT}",
                err(ErrorKind::HostUnreachable)
            )
        );
    }
}
