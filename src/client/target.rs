//! A server on the command line: `HOST`, `HOST:PORT` or `[IPv6]:PORT`.
//!
//! Students write `127.0.0.1:10000` because that is how Python's `connect()`
//! tuple and every browser show an address; taking it as a host name only
//! produced "cannot resolve". A bare IPv6 literal (`::1`) has colons of its own,
//! so a port after it needs brackets, as in URLs. The rule itself is
//! [`parse::host_and_port`], shared with the server's `--bind`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::parse;

/// One server to send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or address, without brackets (any bytes, as given).
    pub host: OsString,
    /// Its port: the one written after it, or `--port`.
    pub port: u16,
}

impl Target {
    /// Read `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT`; a host without a port gets `default_port`.
    pub fn parse(arg: &OsStr, default_port: u16) -> Result<Target, String> {
        let (host, port) = parse::host_and_port(arg.as_bytes())?;
        let port = match port {
            Some(port) => nonzero(port)?,
            None => default_port,
        };
        Ok(Target { host: OsString::from_vec(host.to_vec()), port })
    }

    /// The server as a student would write it: `host:port`, `[v6]:port`.
    pub fn label(&self) -> String {
        let host = self.host.to_string_lossy();
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// A port to connect to: 0 would ask for "any free port", which only a listener can use.
pub fn server_port(s: &str) -> Result<u16, String> {
    nonzero(parse::port(s)?)
}

fn nonzero(port: u16) -> Result<u16, String> {
    match port {
        0 => Err("port 0 means \"any free port\" to a server; give the port the server \
                  listens on, 1 to 65535"
            .to_string()),
        port => Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Result<(String, u16), String> {
        Target::parse(OsStr::new(s), 10000).map(|t| (t.host.to_string_lossy().into_owned(), t.port))
    }

    #[test]
    fn forms() {
        assert_eq!(t("localhost"), Ok(("localhost".into(), 10000)));
        assert_eq!(t("127.0.0.1:4000"), Ok(("127.0.0.1".into(), 4000)));
        assert_eq!(t("::1"), Ok(("::1".into(), 10000)));
        assert_eq!(t("[::1]"), Ok(("::1".into(), 10000)));
        assert_eq!(t("[::1]:4000"), Ok(("::1".into(), 4000)));
        assert_eq!(t("alpine-1:10001"), Ok(("alpine-1".into(), 10001)));
    }

    #[test]
    fn bad_forms() {
        assert_eq!(t("h:abc"), Err("port must be a number from 0 to 65535".into()));
        assert!(t("h:0").unwrap_err().contains("any free port"));
        assert!(t("[::1").unwrap_err().contains("no closing ]"));
        assert!(t("[::1]4000").is_err());
        assert!(t(":4000").unwrap_err().contains("names no host"));
    }

    #[test]
    fn labels() {
        let v6 = Target { host: "::1".into(), port: 7 };
        assert_eq!(v6.label(), "[::1]:7");
        assert_eq!(Target { host: "a".into(), port: 7 }.label(), "a:7");
    }
}
