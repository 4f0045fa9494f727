//! The server loop (stub: being written).
use std::net::IpAddr;
use std::time::Duration;

use crate::access::Cidr;
use crate::cli::Failure;

/// Largest `--read-size`.
pub const MAX_READ_SIZE: usize = 16 * 1024 * 1024;

/// The server's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: IpAddr,
    pub port: u16,
    pub read_size: usize,
    pub max_connections: usize,
    pub backlog: u32,
    pub max_pending: usize,
    pub idle_timeout: Option<Duration>,
    pub grace: Duration,
    pub allow: Vec<Cidr>,
    pub max_per_ip: Option<usize>,
}

/// Run.
pub fn run(_config: Config) -> Result<(), Failure> {
    Err(Failure::new(1, "not yet"))
}
