//! Who may connect: `--allow CIDR` networks.
//!
//! A [`Cidr`] is an address and a prefix length (`127.0.0.0/8`, `::1/128`). An
//! IPv4 client that reaches an IPv6 listener appears as `::ffff:a.b.c.d`; it is
//! matched as the IPv4 address it really is.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network: every address whose first `prefix` bits equal `addr`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network of `addr` with `prefix` leading bits; `None` if the prefix is
    /// longer than the address. An IPv4-mapped network (`::ffff:a.b.c.d/96` or
    /// longer) is kept as the IPv4 network it is, as its clients are matched.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 && v6.to_ipv4_mapped().is_some() => {
                (addr.to_canonical(), prefix - 96)
            }
            _ => (addr, prefix),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// Does this network hold `ip`?
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u32::from(net).into(), u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Are the first `prefix` of the `width` low bits of `a` and `b` equal?
fn prefix_eq(a: u128, b: u128, width: u32, prefix: u8) -> bool {
    let shift = width - u32::from(prefix);
    // A shift by the full width would overflow; a /0 network holds everything.
    shift >= width || (a >> shift) == (b >> shift)
}

impl FromStr for Cidr {
    type Err = String;

    /// `ADDR/PREFIX`, or a bare address meaning a single host (`/32` or `/128`).
    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || format!("'{s}' is not a network (use e.g. 127.0.0.0/8 or ::1/128)");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => {
                let prefix = if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() {
                    p.parse::<u8>().map_err(|_| bad())?
                } else {
                    return Err(bad());
                };
                (a.parse::<IpAddr>().map_err(|_| bad())?, Some(prefix))
            }
            None => (s.trim().parse::<IpAddr>().map_err(|_| bad())?, None),
        };
        let prefix = prefix.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
        Cidr::new(addr, prefix).ok_or_else(bad)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}
