//! A loop's settings: where it listens and every bound it keeps.

use std::net::IpAddr;
use std::time::Duration;

use super::admission::Cidr;
#[cfg(doc)]
use super::memory::default_total;
use crate::recording::Options;

/// A loop's settings: the listening address and every bound it keeps, from
/// the command line of a server built on it (`progjar server`).
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind (`0.0.0.0`, `::`, or one of this machine's addresses).
    pub bind: IpAddr,
    /// Port; 0 lets the kernel pick a free one.
    pub port: u16,
    /// Bytes asked of each `read()`: the size of the loop's one shared buffer.
    pub read_size: usize,
    /// Most connections open at once; lowered to fit the open-file limit.
    pub max_connections: usize,
    /// Listen backlog (the kernel caps it at `net.core.somaxconn`).
    pub backlog: u32,
    /// Unsent bytes one connection may hold before it stops reading (every
    /// service keeps this bound; the loop keeps the total).
    pub max_pending: usize,
    /// Memory all connections' unsent bytes may hold together
    /// (`--max-pending-total`); `None` derives it from the process's memory
    /// limit ([`default_total`]). The real bound is this plus one
    /// read per open connection (see `memory.rs`).
    pub max_pending_total: Option<usize>,
    /// Close connections silent for this long.
    pub idle_timeout: Option<Duration>,
    /// How long a shutdown waits for open connections to finish.
    pub grace: Duration,
    /// Networks allowed to connect; empty means everyone.
    pub allow: Vec<Cidr>,
    /// Most connections from one address.
    pub max_per_ip: Option<usize>,
    /// How many leading bits of an IPv6 address `max_per_ip` counts as one client.
    pub per_ip_prefix6: u8,
    /// Event loops, each on its own thread with its own listener; 0 means one
    /// per core. `max_connections` and `max_pending_total` are split between
    /// them; `max_per_ip` counts over all of them.
    pub loops: usize,
    /// `--record FILE`: what the loop does at each wake-up; with
    /// several loops, loop K records into `FILE.K`.
    pub record: Option<Options>,
}

impl Default for Config {
    /// The same defaults as `progjar server` with no options.
    fn default() -> Config {
        Config {
            bind: IpAddr::from([0, 0, 0, 0]),
            port: 10000,
            read_size: 64 * 1024,
            max_connections: 10000,
            backlog: 1024,
            max_pending: 4 * 1024 * 1024,
            max_pending_total: None,
            idle_timeout: None,
            grace: Duration::from_secs(5),
            allow: Vec::new(),
            max_per_ip: None,
            per_ip_prefix6: 64,
            loops: 1,
            record: None,
        }
    }
}
