//! `progjar info`: this machine's names and addresses, a DNS lookup and socket timeouts.
//!
//! This is the course's first task (`socket_info.py`) as one report on stdout:
//!
//! 1. **This machine**: the hostname (`gethostname`) and what it resolves to.
//! 2. **Network interfaces**: every interface and its IPv4/IPv6 addresses
//!    (`getifaddrs`), the same facts `ip addr` shows. In the lab, `eth1` holds the
//!    `172.16.16.x` address the other machines must use.
//! 3. **The address used to reach the outside**: found by `connect()`ing a UDP
//!    socket. For UDP, `connect` only asks the kernel for a route and fixes the
//!    peer; it sends **no packet**, so this works offline and shows nothing in
//!    Wireshark. The socket's local address is then the source address the
//!    kernel would use.
//! 4. **Remote lookup**: every `getaddrinfo` result for a remote host (family,
//!    socket type, protocol, canonical name, address), like Python's
//!    `socket.getaddrinfo`. std's `ToSocketAddrs` hides the socket type and the
//!    canonical name, so [`crate::resolve`] calls libc's own. The lookup
//!    runs in its own thread with a bound ([`LOOKUP_LIMIT`]): a resolver that
//!    does not answer must not hang the report.
//! 5. **Socket timeouts**: a new socket has none (`None`); after setting one,
//!    reading it back gives `10.0`, like the course's `settimeout(10)`.
//! 6. **The resolver**: the name servers in `/etc/resolv.conf`, and where to
//!    capture the DNS queries that step 4 causes.
//!
//! Nothing here sends a packet except the DNS queries of the lookups themselves,
//! which go wherever the system resolver sends them. A failed remote lookup prints
//! `ERROR: cannot resolve HOST: reason`, the rest of the report still follows, and
//! the command exits with [`crate::cli::EXIT_UNRESOLVED`] (4).

use std::ffi::{OsStr, OsString};
use std::fmt::Display;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use crate::cli::{self, Failure, EXIT_UNRESOLVED};
use crate::resolve::{
    hostname, interfaces, lookup, route_source, AddrInfo, Interface, LOOKUP_LIMIT,
};

/// `progjar info`'s settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Remote host to look up (any bytes: getaddrinfo takes them as they are).
    pub remote: OsString,
    /// Port for the lookup.
    pub port: u16,
}

/// The timeout `progjar info` sets on a fresh socket, like the course's `settimeout(10)`.
pub const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// Where we "aim" a UDP socket to learn the IPv4 route to the outside: a public
/// address (Google's DNS) that any default route covers. No packet is sent.
pub const OUTSIDE_V4: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(8, 8, 8, 8), 53));

/// The IPv6 counterpart of [`OUTSIDE_V4`] (Google's public DNS). No packet is sent.
pub const OUTSIDE_V6: SocketAddr = SocketAddr::V6(SocketAddrV6::new(
    Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888),
    53,
    0,
    0,
));

/// The file the system resolver reads its name servers from.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Print the report; exit code 4 if the remote lookup failed, 141 if stdout was closed.
///
/// Each section is printed as soon as it is ready, so a slow lookup shows where
/// the report is waiting.
pub fn run(config: Config) -> Result<(), Failure> {
    let interfaces = interfaces();
    print(this_machine())?;
    print(interface_section(&interfaces))?;
    print(outside_section(&interfaces))?;
    let (remote, lookup_failure) = remote_section(&config.remote, config.port);
    print(remote)?;
    print(timeout_section())?;
    print(resolver_section(&interfaces))?;
    match lookup_failure {
        Some(reason) => Err(Failure::new(EXIT_UNRESOLVED, reason)),
        None => Ok(()),
    }
}

/// Write one section to stdout; a closed stdout ends the report quietly.
fn print(section: Section) -> Result<(), Failure> {
    cli::write_stdout(&section.text)
}

/// One part of the report: a heading and its lines.
#[derive(Debug, Default)]
struct Section {
    text: String,
}

impl Section {
    fn new(heading: &str) -> Section {
        let mut s = Section::default();
        s.text.push_str(&format!("== {heading} ==\n"));
        s
    }

    fn line(&mut self, line: impl Display) {
        self.text.push_str(&format!("{line}\n"));
    }

    /// End the section with a blank line, so the headings stand out.
    fn done(mut self) -> Section {
        self.text.push('\n');
        self
    }
}

// ---------------------------------------------------------------------------
// 1. This machine

fn this_machine() -> Section {
    let mut s = Section::new("This machine");
    match hostname() {
        Ok(name) => {
            s.line(format_args!("hostname: {name}"));
            match lookup(OsStr::new(&name), 0, libc::SOCK_STREAM, 0, LOOKUP_LIMIT) {
                Ok(found) => s.line(format_args!("{name} resolves to: {}", join_ips(&found))),
                Err(reason) => s.line(format_args!("{name} does not resolve: {reason}")),
            }
        }
        Err(e) => s.line(format_args!("ERROR: cannot read the hostname: {e}")),
    }
    s.done()
}

/// The distinct IP addresses of `found`, in resolver order.
fn join_ips(found: &[AddrInfo]) -> String {
    let mut ips: Vec<IpAddr> = Vec::new();
    for ai in found {
        if !ips.contains(&ai.addr.ip()) {
            ips.push(ai.addr.ip());
        }
    }
    ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------
// 2. Network interfaces

fn interface_section(interfaces: &io::Result<Vec<Interface>>) -> Section {
    let mut s = Section::new("Network interfaces (like `ip addr`)");
    match interfaces {
        Ok(list) if list.is_empty() => s.line("(no interfaces)"),
        Ok(list) => list.iter().for_each(|i| describe_interface(&mut s, i)),
        Err(e) => s.line(format_args!("ERROR: getifaddrs failed: {e}")),
    }
    s.done()
}

fn describe_interface(s: &mut Section, i: &Interface) {
    let mut state = vec![if i.up { "up" } else { "down" }];
    if i.loopback {
        state.push("loopback");
    }
    s.line(format_args!("{} ({})", i.name, state.join(", ")));
    if i.addrs.is_empty() {
        s.line("    (no IP address)");
    }
    for (ip, prefix) in &i.addrs {
        let family = if ip.is_ipv4() { "inet" } else { "inet6" };
        s.line(format_args!("    {family} {ip}/{prefix}"));
    }
}

// ---------------------------------------------------------------------------
// 3. The address used to reach the outside

fn outside_section(interfaces: &io::Result<Vec<Interface>>) -> Section {
    let mut s = Section::new("Address used to reach the outside");
    s.line("(found by connect()ing a UDP socket, which only picks a route: no packet is sent)");
    for (label, target) in [("IPv4", OUTSIDE_V4), ("IPv6", OUTSIDE_V6)] {
        match route_source(target) {
            Ok(ip) => s.line(format_args!("{label}: {ip}{}", on_interface(ip, interfaces))),
            Err(_) => s.line(format_args!("{label}: no route to the outside")),
        }
    }
    s.done()
}

/// ` on eth0` if `ip` belongs to a known interface.
fn on_interface(ip: IpAddr, interfaces: &io::Result<Vec<Interface>>) -> String {
    interface_of(ip, interfaces).map(|name| format!(" on {name}")).unwrap_or_default()
}

fn interface_of(ip: IpAddr, interfaces: &io::Result<Vec<Interface>>) -> Option<String> {
    let list = interfaces.as_ref().ok()?;
    list.iter().find(|i| i.addrs.iter().any(|(a, _)| *a == ip)).map(|i| i.name.clone())
}

// ---------------------------------------------------------------------------
// 4. Remote lookup

/// Returns the section and, if the lookup failed, the failure's one-line reason.
fn remote_section(remote: &OsStr, port: u16) -> (Section, Option<String>) {
    let host = remote.to_string_lossy();
    let mut s = Section::new(&format!("getaddrinfo({host}, {port})"));
    let result = lookup(remote, port, 0, libc::AI_CANONNAME, LOOKUP_LIMIT);
    let failure = match result {
        Ok(found) => {
            s.line(format_args!("{host} resolves to: {}", join_ips(&found)));
            s.line(format_args!(
                "{:<10} {:<12} {:<10} {:<24} address",
                "family", "type", "protocol", "canonical name"
            ));
            for ai in &found {
                s.line(describe_addrinfo(ai));
            }
            None
        }
        Err(reason) => {
            let reason = format!("cannot resolve {host}: {reason}");
            s.line(format_args!("ERROR: {reason}"));
            Some(reason)
        }
    };
    (s.done(), failure)
}

fn describe_addrinfo(ai: &AddrInfo) -> String {
    let canon =
        ai.canonname.as_deref().map(|c| format!("'{c}'")).unwrap_or_else(|| "''".to_string());
    format!(
        "{:<10} {:<12} {:<10} {:<24} {}",
        family_name(ai.family),
        socktype_name(ai.socktype),
        protocol_name(ai.protocol),
        canon,
        ai.addr
    )
}

fn family_name(family: i32) -> String {
    match family {
        libc::AF_INET => "AF_INET".to_string(),
        libc::AF_INET6 => "AF_INET6".to_string(),
        other => format!("family {other}"),
    }
}

fn socktype_name(socktype: i32) -> String {
    match socktype {
        libc::SOCK_STREAM => "SOCK_STREAM".to_string(),
        libc::SOCK_DGRAM => "SOCK_DGRAM".to_string(),
        libc::SOCK_RAW => "SOCK_RAW".to_string(),
        other => format!("type {other}"),
    }
}

fn protocol_name(protocol: i32) -> String {
    match protocol {
        libc::IPPROTO_TCP => "6 (tcp)".to_string(),
        libc::IPPROTO_UDP => "17 (udp)".to_string(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// 5. Socket timeouts

fn timeout_section() -> Section {
    let mut s = Section::new("Socket timeouts");
    match socket_timeouts() {
        Ok((before, after)) => {
            s.line(format_args!("timeout : {}", python_timeout(before)));
            s.line(format_args!("timeout : {}", python_timeout(after)));
        }
        Err(e) => s.line(format_args!("ERROR: cannot create a socket: {e}")),
    }
    s.done()
}

/// A fresh TCP socket's read timeout, and the same after setting [`SOCKET_TIMEOUT`].
///
/// Python's `settimeout` is a timeout on every blocking call; the closest kernel
/// knob is `SO_RCVTIMEO` (what std's `set_read_timeout` sets), read back here.
/// The socket is never connected, so nothing goes on the network.
pub fn socket_timeouts() -> io::Result<(Option<Duration>, Option<Duration>)> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let before = socket.read_timeout()?;
    socket.set_read_timeout(Some(SOCKET_TIMEOUT))?;
    Ok((before, socket.read_timeout()?))
}

/// A timeout the way Python prints `sock.gettimeout()`: `None` or `10.0`.
pub fn python_timeout(timeout: Option<Duration>) -> String {
    match timeout {
        None => "None".to_string(),
        Some(d) => format!("{:?}", d.as_secs_f64()),
    }
}

// ---------------------------------------------------------------------------
// 6. The resolver

fn resolver_section(interfaces: &io::Result<Vec<Interface>>) -> Section {
    let mut s = Section::new("Resolver");
    let servers = match std::fs::read_to_string(RESOLV_CONF) {
        Ok(text) => nameservers(&text),
        Err(e) => {
            s.line(format_args!("cannot read {RESOLV_CONF}: {e}"));
            return s.done();
        }
    };
    if servers.is_empty() {
        s.line(format_args!("no nameserver in {RESOLV_CONF} (the resolver then asks 127.0.0.1)"));
    }
    for server in servers {
        s.line(format_args!("nameserver {server} (from {RESOLV_CONF})"));
        s.line(format_args!(
            "  DNS queries go to {server} on UDP port 53: {}",
            capture_hint(server, interfaces)
        ));
    }
    s.done()
}

/// The `nameserver` addresses of a resolv.conf text, in order.
pub fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next())
        // A scoped IPv6 server (fe80::1%eth0) is shown without its scope.
        .filter_map(|addr| addr.split('%').next()?.parse().ok())
        .collect()
}

/// Where to capture the queries to `server`.
fn capture_hint(server: IpAddr, interfaces: &io::Result<Vec<Interface>>) -> String {
    if server.is_loopback() {
        return "a local stub resolver (Docker's is 127.0.0.11): capture `udp port 53` \
                (Wireshark: udp.port==53) on the loopback (lo) or \"any\""
            .to_string();
    }
    let interface =
        route_source(SocketAddr::new(server, 53)).ok().and_then(|ip| interface_of(ip, interfaces));
    match interface {
        Some(name) => {
            format!("capture `udp port 53` (Wireshark: udp.port==53) on {name}, which reaches it")
        }
        None => "capture `udp port 53` (Wireshark: udp.port==53) on the interface that reaches it \
                 (no route to it right now)"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameservers() {
        let text = "# comment\nsearch lan\nnameserver 127.0.0.11\nnameserver fe80::1%eth0\nnameserver bogus\n";
        let want: Vec<IpAddr> = vec!["127.0.0.11".parse().unwrap(), "fe80::1".parse().unwrap()];
        assert_eq!(nameservers(text), want);
    }

    #[test]
    fn python_style_timeouts() {
        assert_eq!(python_timeout(None), "None");
        assert_eq!(python_timeout(Some(Duration::from_secs(10))), "10.0");
        assert_eq!(python_timeout(Some(Duration::from_millis(2500))), "2.5");
    }
}
