//! How each option's text becomes its value: the library's parsers
//! (`progjar::parse`) with each option's range, for argh's `from_str_fn`.

use std::net::IpAddr;
use std::time::Duration;

use progjar::event_loop::admission::Cidr;
use progjar::{cli, client, parse, proxy, resolve};

pub fn parse_port(s: &str) -> Result<u16, String> {
    parse::port(s)
}

/// The client's `--port`: 0 would ask for "any free port", which only a listener can use.
pub fn parse_server_port(s: &str) -> Result<u16, String> {
    client::server_port(s)
}

pub fn parse_payload_size(s: &str) -> Result<usize, String> {
    parse::size_in(s, 0..=usize::MAX)
}

pub fn parse_backlog(s: &str) -> Result<u32, String> {
    let n = parse::number_in(s, 0..=u32::MAX.into())?;
    u32::try_from(n).map_err(|e| e.to_string())
}

/// An address, or a name resolved to one (IPv4 first: see `resolve::bind_address`),
/// and the port written after it, if any (`HOST:PORT`, `[V6]:PORT`, as for the
/// client). Only the host is ever looked up, never a string with a port in it.
pub fn parse_bind(s: &str) -> Result<(IpAddr, Option<u16>), String> {
    let (host, port) = parse::host_and_port(s.as_bytes())?;
    let host = String::from_utf8_lossy(host);
    // No name has a colon: this is an IPv6 address with a port but no brackets.
    if host.contains(':') && host.parse::<IpAddr>().is_err() {
        return Err(format!(
            "'{s}' is not an address; an IPv6 address with a port is written in brackets, \
             e.g. [::1]:10000"
        ));
    }
    Ok((resolve::bind_address(&host, resolve::LOOKUP_LIMIT)?, port))
}

/// `--to HOST:PORT`: any bytes for the host, as for the client.
pub fn parse_to(s: &str) -> Result<client::Target, String> {
    proxy::parse_target(&cli::os_arg(s.to_string()))
}

pub fn parse_read_size(s: &str) -> Result<usize, String> {
    parse::size_in(s, 1..=progjar::event_loop::MAX_READ_SIZE)
}

pub fn parse_pending(s: &str) -> Result<usize, String> {
    parse::size_in(s, 1..=usize::MAX)
}

pub fn parse_record_limit(s: &str) -> Result<usize, String> {
    parse::size_in(s, 1024..=usize::MAX)
}

pub fn parse_chunk(s: &str) -> Result<usize, String> {
    parse::size_in(s, 1..=1024 * 1024)
}

pub fn parse_count(s: &str) -> Result<usize, String> {
    parse::count(s)
}

/// `--loops`: past 1024 a loop per thread costs more than it serves.
pub fn parse_loops(s: &str) -> Result<usize, String> {
    let n = parse::number_in(s, 0..=1024)?;
    usize::try_from(n).map_err(|e| e.to_string())
}

pub fn parse_prefix6(s: &str) -> Result<u8, String> {
    parse::prefix_len(s, 128)
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse::duration(s)
}

pub fn parse_cidr(s: &str) -> Result<Cidr, String> {
    s.parse()
}
