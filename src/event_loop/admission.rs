//! Who may connect: `--allow` networks, `--max-connections` and `--max-per-ip`.
//!
//! Every refusal the server makes at accept is a [`Refusal`]: [`Admission::check`]
//! returns it, and [`Refusals`] keeps its count, its once-a-second warning and
//! its words for the summary, so a new kind is written in one place.
//!
//! A [`Cidr`] is an address and a prefix length (`127.0.0.0/8`, `::1/128`).
//! An IPv4 client appears as `a.b.c.d` on an IPv4 listener and as
//! `::ffff:a.b.c.d` on a dual-stack `::` one; it is the same client either way,
//! so it is matched in both forms (`--allow ::/0` holds every IPv4 client).
//! CIDR matching stays hand-written rather than taken from `ipnet`: it is two
//! shifts, and the parts that are ours (the IPv4-mapped rule, the per-/64 key,
//! the one-line errors) `ipnet` would not do.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::throttle::Throttle;
use crate::units::{grouped, plural};

/// An IP network: every address whose first `prefix` bits equal `addr`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network of `addr` with `prefix` leading bits; `None` if the prefix is
    /// longer than the address. An IPv4-mapped network (`::ffff:a.b.c.d/96` or
    /// longer) is kept as the IPv4 network it is.
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

    /// Does this network hold `ip`? An IPv4 client is tried both as `a.b.c.d`
    /// and as `::ffff:a.b.c.d`, whichever way it arrived.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u32::from(net).into(), u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V4(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip.to_ipv6_mapped()), 128, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
    }

    /// The address itself for a single host, else `addr/prefix`.
    fn host_or_network(&self) -> String {
        match (self.addr, self.prefix) {
            (IpAddr::V4(_), 32) | (IpAddr::V6(_), 128) => self.addr.to_string(),
            _ => self.to_string(),
        }
    }
}

/// Are the first `prefix` of the `width` low bits of `a` and `b` equal?
fn prefix_eq(a: u128, b: u128, width: u32, prefix: u8) -> bool {
    let shift = width - u32::from(prefix);
    // A shift by the full width would overflow; a /0 network holds everything.
    shift >= width || (a >> shift) == (b >> shift)
}

/// What `--max-per-ip` counts a client as: an IPv4 client by its address, an
/// IPv6 client by its first `prefix6` bits, because one IPv6 host is usually
/// given a whole /64 and could otherwise take a new address per connection.
pub fn per_ip_key(ip: IpAddr, prefix6: u8) -> Cidr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => Cidr { addr: v4.into(), prefix: 32 },
        IpAddr::V6(v6) => {
            let prefix = prefix6.min(128);
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            Cidr { addr: Ipv6Addr::from(u128::from(v6) & keep).into(), prefix }
        }
    }
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

/// Why a freshly accepted client was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-connections` are open already.
    MaxConnections {
        /// The limit.
        max: usize,
    },
    /// No file descriptor was left to serve it with.
    NoDescriptor,
    /// Its address is in no `--allow` network.
    NotAllowed,
    /// `--max-per-ip` are open already from its address (or IPv6 /64).
    MaxPerIp {
        /// The limit.
        max: usize,
        /// The address or network they come from.
        from: Cidr,
    },
}

/// Each kind's words in the summary, in the order they are listed there.
const SUMMARY_WORDS: [&str; 4] =
    ["at --max-connections", "out of file descriptors", "not in --allow", "at --max-per-ip"];

impl Refusal {
    /// The kind's place in [`SUMMARY_WORDS`] and [`Refusals`].
    fn kind(&self) -> usize {
        match self {
            Refusal::MaxConnections { .. } => 0,
            Refusal::NoDescriptor => 1,
            Refusal::NotAllowed => 2,
            Refusal::MaxPerIp { .. } => 3,
        }
    }
}

impl fmt::Display for Refusal {
    /// The reason, as the warning gives it after `refused ADDR: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::MaxConnections { max } => {
                write!(f, "{} open (--max-connections)", plural(*max as u64, "connection"))
            }
            Refusal::NoDescriptor => write!(f, "out of file descriptors"),
            Refusal::NotAllowed => write!(f, "not in --allow"),
            Refusal::MaxPerIp { max, from } => {
                let open = plural(*max as u64, "connection");
                write!(f, "{open} open from {} (--max-per-ip)", from.host_or_network())
            }
        }
    }
}

/// Every kind of refusal's count and warning throttle.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refusals {
    counts: [u64; 4],
    throttles: [Throttle; 4],
}

impl Refusals {
    /// Count `n` refusals like `refusal`; `Some(quiet)` when its warning is due
    /// now, `quiet` being how many were not warned about since the last one.
    pub fn count(&mut self, refusal: &Refusal, n: u64) -> Option<u64> {
        self.counts[refusal.kind()] += n;
        self.throttles[refusal.kind()].hit_n(n)
    }

    /// Add another loop's counts to these.
    pub fn add(&mut self, other: &Refusals) {
        for (n, more) in self.counts.iter_mut().zip(other.counts) {
            *n += more;
        }
    }

    /// How many refusals like `refusal` there were.
    pub fn of(&self, refusal: &Refusal) -> u64 {
        self.counts[refusal.kind()]
    }

    /// `; refused 3 at --max-connections, 1 not in --allow`, or nothing.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .counts
            .iter()
            .zip(SUMMARY_WORDS)
            .filter(|(n, _)| **n > 0)
            .map(|(n, words)| format!("{} {words}", grouped(*n)))
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("; refused {}", parts.join(", "))
        }
    }
}

/// The admission rules and the per-address counts `--max-per-ip` needs.
///
/// A clone shares the counts: with `--loops N` every loop holds a clone, so
/// the limit counts a client's connections on all loops together.
#[derive(Debug, Clone)]
pub struct Admission {
    allow: Vec<Cidr>,
    max_per_ip: Option<usize>,
    prefix6: u8,
    /// Open connections per [`per_ip_key`], kept only with `--max-per-ip`.
    /// Locked only at accept and close, never per read, and only for one
    /// hash lookup, so a loop waits at most that long for another.
    open: Arc<Mutex<HashMap<Cidr, usize>>>,
}

impl Admission {
    /// `allow` empty means everyone; `prefix6` is how much of an IPv6 address
    /// `--max-per-ip` counts as one client.
    pub fn new(allow: Vec<Cidr>, max_per_ip: Option<usize>, prefix6: u8) -> Admission {
        Admission { allow, max_per_ip, prefix6, open: Arc::default() }
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<Cidr, usize>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// May a client from `ip` be served, with `open` of `max_open` connections
    /// in use? If so it is counted until [`Admission::left`].
    pub fn check(&mut self, ip: IpAddr, open: usize, max_open: usize) -> Result<(), Refusal> {
        if !self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(ip)) {
            return Err(Refusal::NotAllowed);
        }
        if open >= max_open {
            return Err(Refusal::MaxConnections { max: max_open });
        }
        if let Some(max) = self.max_per_ip {
            let from = per_ip_key(ip, self.prefix6);
            let mut counts = self.counts();
            let open = counts.entry(from).or_insert(0);
            if *open >= max {
                return Err(Refusal::MaxPerIp { max, from });
            }
            *open += 1;
        }
        Ok(())
    }

    /// A client [`Admission::check`] let in has gone.
    pub fn left(&mut self, ip: IpAddr) {
        if self.max_per_ip.is_none() {
            return;
        }
        let key = per_ip_key(ip, self.prefix6);
        let mut counts = self.counts();
        if let Some(open) = counts.get_mut(&key) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_count_per_prefix_ipv4_per_address() {
        let a = per_ip_key(ip("2001:db8:1:2:aaaa::1"), 64);
        assert_eq!(a, per_ip_key(ip("2001:db8:1:2:ffff:1:2:3"), 64));
        assert_ne!(a, per_ip_key(ip("2001:db8:1:3::1"), 64));
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(per_ip_key(ip("2001:db8::1"), 128).host_or_network(), "2001:db8::1");
        assert_eq!(per_ip_key(ip("2001:db8::1"), 0).to_string(), "::/0");
        assert_ne!(per_ip_key(ip("10.0.0.1"), 64), per_ip_key(ip("10.0.0.2"), 64));
        // An IPv4 client is one client however it arrived.
        assert_eq!(per_ip_key(ip("::ffff:10.0.0.1"), 64), per_ip_key(ip("10.0.0.1"), 64));
        assert_eq!(per_ip_key(ip("::ffff:10.0.0.1"), 64).host_or_network(), "10.0.0.1");
    }

    #[test]
    fn max_per_ip_holds_a_whole_ipv6_prefix_to_the_limit() {
        let mut rules = Admission::new(Vec::new(), Some(2), 64);
        assert_eq!(rules.check(ip("2001:db8::1"), 0, 100), Ok(()));
        assert_eq!(rules.check(ip("2001:db8::2"), 1, 100), Ok(()));
        let from = "2001:db8::/64".parse().unwrap();
        assert_eq!(rules.check(ip("2001:db8::3"), 2, 100), Err(Refusal::MaxPerIp { max: 2, from }));
        assert_eq!(rules.check(ip("2001:db8:0:1::1"), 2, 100), Ok(()));
        rules.left(ip("2001:db8::1"));
        assert_eq!(rules.check(ip("2001:db8::4"), 2, 100), Ok(()));
        assert_eq!(
            Refusal::MaxPerIp { max: 2, from }.to_string(),
            "2 connections open from 2001:db8::/64 (--max-per-ip)"
        );
    }

    #[test]
    fn refusals_are_summarised_in_one_line() {
        let mut refused = Refusals::default();
        assert_eq!(refused.summary(), "");
        assert_eq!(refused.count(&Refusal::NotAllowed, 1), Some(0));
        assert_eq!(refused.count(&Refusal::NotAllowed, 1), None);
        refused.count(&Refusal::MaxConnections { max: 5 }, 3);
        assert_eq!(refused.of(&Refusal::NotAllowed), 2);
        assert_eq!(refused.summary(), "; refused 3 at --max-connections, 2 not in --allow");
    }
}
