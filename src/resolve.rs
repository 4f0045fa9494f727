//! Names and addresses: what the system resolver and the kernel say about them.
//!
//! The client, `progjar info`, the server's `--bind NAME` and the stress tool
//! all turn names into addresses; this module is the one place that asks. It
//! also lists this machine's name, interfaces and routes for `progjar info`.
//!
//! # Crates, and the code kept
//!
//! - Interfaces and the hostname come from `nix` (`getifaddrs`, `gethostname`):
//!   its list keeps every entry with its flags (so an interface without an IP
//!   address is still shown, which `if-addrs` would drop) and owns the unsafe
//!   pointer walking.
//! - `getaddrinfo` stays here (the one `unsafe` left, behind [`getaddrinfo`]):
//!   `dns-lookup`, the crate for it, `unwrap`s the canonical name as UTF-8 (a
//!   panic, which aborts a release build) and takes only `&str` hosts, while a
//!   HOST on our command line may be any bytes.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::unix::ffi::OsStrExt;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use nix::net::if_::InterfaceFlags;
use nix::sys::socket::{SockaddrLike, SockaddrStorage};

/// Longest wait for one name lookup. A resolver that answers at all answers in
/// well under a second; glibc's own retries (5 s per server, two attempts) would
/// otherwise let an unreachable name server stall a report for half a minute.
pub const LOOKUP_LIMIT: Duration = Duration::from_secs(5);

/// One `getaddrinfo` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    /// `AF_INET` or `AF_INET6`.
    pub family: i32,
    /// `SOCK_STREAM`, `SOCK_DGRAM` or `SOCK_RAW`.
    pub socktype: i32,
    /// `IPPROTO_TCP`, `IPPROTO_UDP` or 0.
    pub protocol: i32,
    /// The canonical name, only on the first result and only with `AI_CANONNAME`.
    pub canonname: Option<String>,
    /// The address and port.
    pub addr: SocketAddr,
}

/// The distinct TCP addresses of `host` (a literal resolves to itself, `[::1]`
/// too), in the resolver's order, giving up after `limit`.
pub fn tcp_addresses(host: &OsStr, port: u16, limit: Duration) -> Result<Vec<SocketAddr>, String> {
    // `[::1]` is how URLs write IPv6 literals; getaddrinfo wants `::1`.
    let bytes = host.as_bytes();
    let name = bytes.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")).unwrap_or(bytes);
    let found = lookup(OsStr::from_bytes(name), port, libc::SOCK_STREAM, 0, limit)?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in found.into_iter().map(|ai| ai.addr) {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    Ok(addrs)
}

/// The address for a listener's `--bind`: a literal as it is, or the first IPv4
/// address of a name (else its first). A name such as `localhost` often has both
/// 127.0.0.1 and ::1; the IPv4 one is what the course's clients use, and one
/// listener can bind only one of them.
pub fn bind_address(s: &str, limit: Duration) -> Result<IpAddr, String> {
    if let Ok(ip) = s.parse() {
        return Ok(ip);
    }
    let use_an_address = "use an address: 0.0.0.0 (every IPv4 address), :: (IPv6 and IPv4) \
                          or one of this machine's (see progjar info)";
    let addrs = tcp_addresses(OsStr::new(s), 0, limit).map_err(|e| {
        format!("'{s}' is not an address and does not resolve ({e}); {use_an_address}")
    })?;
    let first = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first());
    first.map(|a| a.ip()).ok_or_else(|| format!("'{s}' resolves to no address; {use_an_address}"))
}

/// [`getaddrinfo`] in its own thread, giving up after `limit`.
///
/// getaddrinfo cannot be cancelled; if it outlives `limit`, its thread is left to
/// finish on its own (it holds nothing of ours) and the process does not wait for it.
pub fn lookup(
    host: &OsStr,
    port: u16,
    socktype: i32,
    flags: i32,
    limit: Duration,
) -> Result<Vec<AddrInfo>, String> {
    let (tx, rx) = mpsc::channel();
    let owned = host.to_os_string();
    thread::Builder::new()
        .name("getaddrinfo".into())
        .spawn(move || {
            // The receiver may be gone if we were too slow: nothing left to tell.
            let _ = tx.send(getaddrinfo(&owned, port, socktype, flags));
        })
        .map_err(|e| format!("cannot start the lookup thread: {e}"))?;
    match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(_) => Err(format!("no answer from the resolver within {} s", limit.as_secs_f64())),
    }
}

/// libc `getaddrinfo` for `host` and `port` (any family), as owned Rust values.
///
/// `socktype` 0 asks for every socket type (Python's default); `flags` are `AI_*`
/// flags such as `AI_CANONNAME`. An empty answer is an error, like in C.
pub fn getaddrinfo(
    host: &OsStr,
    port: u16,
    socktype: i32,
    flags: i32,
) -> Result<Vec<AddrInfo>, String> {
    let c_host =
        CString::new(host.as_bytes()).map_err(|_| "the name contains a NUL byte".to_string())?;
    let c_port = CString::new(port.to_string()).map_err(|_| "bad port".to_string())?;
    // SAFETY: addrinfo is plain data; all-zero is the documented "no hints" value.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = flags;
    let mut head: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: the strings and hints outlive the call; the result list is owned by
    // `AddrInfoList`, whose Drop calls freeaddrinfo.
    let rc = unsafe { libc::getaddrinfo(c_host.as_ptr(), c_port.as_ptr(), &hints, &mut head) };
    if rc != 0 {
        return Err(gai_error(rc));
    }
    let list = AddrInfoList(head);
    let found: Vec<AddrInfo> = list.iter().filter_map(to_addrinfo).collect();
    if found.is_empty() {
        return Err("no IPv4 or IPv6 address".to_string());
    }
    Ok(found)
}

fn to_addrinfo(ai: &libc::addrinfo) -> Option<AddrInfo> {
    // SAFETY: ai_addr points to a sockaddr of ai_addrlen bytes owned by the list.
    let storage = unsafe { SockaddrStorage::from_raw(ai.ai_addr, Some(ai.ai_addrlen)) }?;
    let addr = to_std(&storage)?;
    let canonname = if ai.ai_canonname.is_null() {
        None
    } else {
        // SAFETY: a non-null ai_canonname is a NUL-terminated string owned by the list.
        Some(unsafe { CStr::from_ptr(ai.ai_canonname) }.to_string_lossy().into_owned())
    };
    Some(AddrInfo {
        family: ai.ai_family,
        socktype: ai.ai_socktype,
        protocol: ai.ai_protocol,
        canonname,
        addr,
    })
}

/// The readable reason for a getaddrinfo error code.
fn gai_error(rc: i32) -> String {
    if rc == libc::EAI_SYSTEM {
        return io::Error::last_os_error().to_string();
    }
    // SAFETY: gai_strerror returns a pointer to a static NUL-terminated string.
    let text = unsafe { CStr::from_ptr(libc::gai_strerror(rc)) };
    text.to_string_lossy().into_owned()
}

/// The list `getaddrinfo` allocates, freed with `freeaddrinfo` when dropped
/// (on every path, including early returns).
struct AddrInfoList(*mut libc::addrinfo);

impl AddrInfoList {
    fn iter(&self) -> impl Iterator<Item = &libc::addrinfo> {
        // SAFETY: each ai_next is null or a valid entry of the same list, which lives
        // as long as `self`.
        std::iter::successors(unsafe { self.0.as_ref() }, |ai| unsafe { ai.ai_next.as_ref() })
    }
}

impl Drop for AddrInfoList {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from a successful getaddrinfo, freed once.
            unsafe { libc::freeaddrinfo(self.0) }
        }
    }
}

/// An IPv4 or IPv6 socket address as std's `SocketAddr`; other families are `None`.
fn to_std(sa: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = sa.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(v4.ip(), v4.port())));
    }
    let v6 = sa.as_sockaddr_in6()?;
    Some(SocketAddr::V6(SocketAddrV6::new(v6.ip(), v6.port(), v6.flowinfo(), v6.scope_id())))
}

/// The machine's host name (Python's `socket.gethostname()`).
pub fn hostname() -> io::Result<String> {
    let name = nix::unistd::gethostname()?;
    Ok(name.to_string_lossy().into_owned())
}

/// One network interface and its IP addresses, as `getifaddrs` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The interface name (`lo`, `eth0`, `eth1`).
    pub name: String,
    /// `IFF_UP`: the interface is administratively up.
    pub up: bool,
    /// `IFF_LOOPBACK`: the interface is the loopback.
    pub loopback: bool,
    /// Each address with its prefix length (`/24`).
    pub addrs: Vec<(IpAddr, u8)>,
}

/// Every interface and its addresses, in the kernel's order (`getifaddrs`).
pub fn interfaces() -> io::Result<Vec<Interface>> {
    let mut out: Vec<Interface> = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs()? {
        let index = match out.iter().position(|i| i.name == ifa.interface_name) {
            Some(index) => index,
            None => {
                let name = ifa.interface_name.clone();
                out.push(Interface { name, up: false, loopback: false, addrs: Vec::new() });
                out.len() - 1
            }
        };
        let entry = &mut out[index];
        entry.up |= ifa.flags.contains(InterfaceFlags::IFF_UP);
        entry.loopback |= ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        // Entries without an IP address (AF_PACKET, the link layer) only tell us the
        // interface exists.
        if let Some(addr) = ifa.address.as_ref().and_then(to_std) {
            let mask = ifa.netmask.as_ref().and_then(to_std).map(|m| m.ip());
            entry.addrs.push((addr.ip(), mask.map_or(0, prefix_len)));
        }
    }
    Ok(out)
}

/// The number of leading one bits of a netmask: 255.255.255.0 is /24.
fn prefix_len(mask: IpAddr) -> u8 {
    let ones = match mask {
        IpAddr::V4(m) => u32::from(m).count_ones(),
        IpAddr::V6(m) => u128::from(m).count_ones(),
    };
    // At most 128, so it always fits.
    u8::try_from(ones).unwrap_or(u8::MAX)
}

/// The source address the kernel would use to send to `target`.
///
/// `connect` on a UDP socket sends nothing: it looks up the route and records the
/// peer. `local_addr` then shows the address that route leaves from.
pub fn route_source(target: SocketAddr) -> io::Result<IpAddr> {
    let any: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any)?;
    socket.connect(target)?;
    Ok(socket.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_lengths() {
        assert_eq!(prefix_len("255.255.255.0".parse().unwrap()), 24);
        assert_eq!(prefix_len("ffff:ffff:ffff:ffff::".parse().unwrap()), 64);
    }

    #[test]
    fn localhost_resolves() {
        let found = getaddrinfo(OsStr::new("localhost"), 80, libc::SOCK_STREAM, 0).unwrap();
        assert!(found.iter().all(|a| a.addr.ip().is_loopback() && a.addr.port() == 80));
    }

    #[test]
    fn bracketed_literal_resolves_to_itself() {
        let limit = Duration::from_secs(5);
        let addrs = tcp_addresses(OsStr::new("[::1]"), 7, limit).unwrap();
        assert_eq!(addrs, ["[::1]:7".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn loopback_interface_is_listed() {
        let list = interfaces().unwrap();
        let lo = list.iter().find(|i| i.loopback).expect("a loopback interface");
        assert!(lo.addrs.contains(&(IpAddr::from([127, 0, 0, 1]), 8)), "{lo:?}");
    }
}
