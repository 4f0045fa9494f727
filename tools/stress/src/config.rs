//! What a run is asked to do: the command line, checked.
//!
//! Its own file so that every side can read it without importing the others:
//! `main.rs` builds it, `run.rs` acts on it and `report.rs` prints it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use progjar::tls::TlsTarget;

/// When the run stops.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// At this long after the start (`-d`).
    After(Duration),
    /// When every active connection has had this many messages echoed (`-n`).
    Messages(u64),
}

/// What to do: the command line, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The echo server.
    pub target: SocketAddr,
    /// Active connections.
    pub connections: u32,
    /// Idle connections.
    pub idle: u32,
    /// Connections started per second, or `None` for as fast as possible.
    pub connect_rate: Option<u32>,
    /// Bytes per message.
    pub message_size: usize,
    /// When to stop.
    pub until: Until,
    /// Messages in flight per connection.
    pub pipeline: u32,
    /// `--per-connection`: close each active connection after this many
    /// messages and open another in its place.
    pub per_connection: Option<u64>,
    /// `--source`: local addresses the connections are spread over.
    pub sources: Vec<IpAddr>,
    /// An echo that takes longer is late (`--echo-timeout`); one that has not
    /// come after twice as long is lost.
    pub echo_timeout: Duration,
    /// `--tls`: talk TLS to the server.
    pub tls: Option<TlsConfig>,
}

/// `--tls` with its trust and name, set up once (the `--ca` file read, the
/// `--insecure` warning given) by the same code as `progjar client --tls`'s.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The rustls settings and the name the server's certificate must be for.
    pub target: TlsTarget,
    /// The certificate is checked (`--ca`), not taken as it is (`--insecure`).
    pub checked: bool,
}
