//! Opening connections: in which order, how fast, and what to say when the
//! machine runs out of something.
//!
//! Idle connections are opened first, then the active ones, so the active ones
//! are measured against a server that already holds all the silent clients (the
//! C10K question: does holding 10000 connections slow down the busy few?).
//! Numbering is the other way round: active connections are 0..c and idle ones
//! c..c+idle, so "connection 3" means the same thing with or without `--idle`.
//!
//! Every `connect()` is nonblocking: it returns at once and the handshake's end
//! shows up later as a writable event, so one thread can have thousands of
//! handshakes in progress. Without `--connect-rate` they are started as fast as
//! the loop turns; a burst larger than the server's listen backlog makes the
//! kernel drop SYNs, which then come back a second later (visible as a 1 s
//! connect latency). With `--connect-rate N` the k-th connection is started at
//! `k / N` seconds, an even ramp the server's `accept()` loop can keep up with.
//!
//! Two limits stop a client long before the server does, and both are reported
//! in words instead of as thousands of identical failures:
//! * EMFILE: every socket is a file descriptor, and the process may have only
//!   `ulimit -n` of them open (see `progjar::limits`).
//! * EADDRNOTAVAIL: every connection to the same server address and port needs
//!   its own local port, taken from `net.ipv4.ip_local_port_range`
//!   (about 28000 ports by default), and ports of closed connections stay in
//!   TIME_WAIT for a minute. Each `--source` address has its own range, so
//!   spreading connections over several (127.0.0.2, 127.0.0.3, ... on
//!   loopback) lifts this limit, as tcpkali does.
//!
//! With `--per-connection N`, an active connection that has had its N messages
//! echoed closes, and a replacement is started at once (its id follows the
//! first ones'), so a run also measures connects per second (netperf's TCP_CRR).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use nix::sys::socket::{setsockopt, sockopt::IpBindAddressNoPort};
use progjar::limits::NofileLimits;
use progjar::units;
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::conn::{Conn, Role};
use crate::describe::describe;
use crate::stats::Stats;

/// Most connects started in one turn of the loop. Starting 10000 at once would
/// keep the loop away from `poll()` (and from the connections that are already
/// up) for tens of milliseconds; 256 keeps each turn short while still opening
/// tens of thousands per second.
const MAX_CONNECTS_PER_TURN: u32 = 256;

/// File descriptors the process needs besides its connections: stdin, stdout,
/// stderr and the epoll descriptor, plus a few spare (e.g. reading /proc).
const FD_RESERVE: u64 = 8;

/// Starts connections in order, at the asked rate, until a limit stops it.
pub struct Opener {
    /// The server.
    addr: SocketAddr,
    /// Active connections asked for.
    connections: u32,
    /// Idle connections asked for.
    idle: u32,
    /// Connections per second, or `None` for as fast as possible.
    rate: Option<u32>,
    /// Messages each connection may have in flight (sizes its stamp queue).
    pipeline: u64,
    /// When the ramp started.
    start: Instant,
    /// How many have been started (or given up on): the next one's place in the order.
    next: u32,
    /// Replacements owed for connections that finished their `--per-connection`
    /// messages; opened at once, whatever `--connect-rate`.
    reopens: u32,
    /// The id of the next replacement: ids go on after the first ones.
    next_id: u32,
    /// `--source` addresses, used in turn; empty to let the kernel choose.
    sources: Vec<IpAddr>,
    /// When the first active connection was started: the rates count from here.
    pub first_active: Option<Instant>,
    /// The open-file limits, for the EMFILE message.
    limits: Option<NofileLimits>,
}

impl Opener {
    /// An opener for the connections `config` asks for, its ramp starting at `start`.
    pub fn new(config: &Config, start: Instant, limits: Option<NofileLimits>) -> Opener {
        Opener {
            addr: config.target,
            connections: config.connections,
            idle: config.idle,
            rate: config.connect_rate,
            pipeline: u64::from(config.pipeline),
            start,
            next: 0,
            reopens: 0,
            next_id: config.connections + config.idle,
            sources: config.sources.clone(),
            first_active: None,
            limits,
        }
    }

    /// Connections not started yet, replacements included.
    pub fn remaining(&self) -> u32 {
        self.connections + self.idle - self.next + self.reopens
    }

    /// An active connection finished its `--per-connection` messages: open
    /// another in its place.
    pub fn reopen(&mut self) {
        self.reopens += 1;
    }

    /// The id and role of the connection at `place` in the opening order.
    fn identity(&self, place: u32) -> (u32, Role) {
        if place < self.idle {
            (self.connections + place, Role::Idle)
        } else {
            (place - self.idle, Role::Active)
        }
    }

    /// How many should have been started by `now`.
    fn due(&self, now: Instant) -> u32 {
        let total = self.connections + self.idle;
        match self.rate {
            None => total,
            Some(rate) => {
                let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
                // The first one at once, then one every 1/rate seconds.
                let due = (elapsed * f64::from(rate)).floor() as u64 + 1;
                due.min(u64::from(total)) as u32
            }
        }
    }

    /// When the next connection is due, if any remain: the loop's poll timeout
    /// must not sleep past it.
    pub fn next_due(&self) -> Option<Instant> {
        if self.remaining() == 0 {
            return None;
        }
        if self.reopens > 0 {
            return Some(self.start);
        }
        match self.rate {
            None => Some(self.start),
            Some(rate) => {
                Some(self.start + Duration::from_secs_f64(f64::from(self.next) / f64::from(rate)))
            }
        }
    }

    /// Start the connections that are due, at most [`MAX_CONNECTS_PER_TURN`].
    /// Returns how many of them are active.
    pub fn open_due(
        &mut self,
        now: Instant,
        registry: &Registry,
        conns: &mut Slab<Conn>,
        stats: &mut Stats,
    ) -> u64 {
        let mut active = 0;
        for _ in 0..MAX_CONNECTS_PER_TURN {
            let Some((id, role)) = self.take_due(now) else { break };
            if self.open_one(id, role, registry, conns, stats) && role == Role::Active {
                active += 1;
            }
        }
        active
    }

    /// The next connection due by `now`, taken off the plan: the first ones in
    /// their order and at their rate, then the replacements.
    fn take_due(&mut self, now: Instant) -> Option<(u32, Role)> {
        if self.next < self.due(now) {
            self.next += 1;
            return Some(self.identity(self.next - 1));
        }
        if self.reopens > 0 {
            self.reopens -= 1;
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            return Some((id, Role::Active));
        }
        None
    }

    /// Start connection `id`'s connect and register it; false if it failed
    /// (counted) or a limit stopped the opening (see [`Opener::halt`]).
    fn open_one(
        &mut self,
        id: u32,
        role: Role,
        registry: &Registry,
        conns: &mut Slab<Conn>,
        stats: &mut Stats,
    ) -> bool {
        // A fresh clock read per connect (not the turn's `now`): each connect()
        // is a syscall of several µs, and 256 of them in a turn would otherwise
        // charge the last one for all the others.
        let started = Instant::now();
        let source = self.sources.get(id as usize % self.sources.len().max(1)).copied();
        let stream = match connect_from(self.addr, source) {
            Ok(stream) => stream,
            Err(e) => {
                match e.raw_os_error() {
                    Some(libc::EMFILE | libc::ENFILE | libc::EADDRNOTAVAIL) => {
                        self.halt(id, &e, stats)
                    }
                    // Anything else (e.g. ENETUNREACH) fails this connection only.
                    _ => stats.failed(id, format!("connect failed: {}", describe(&e)), 1),
                }
                return false;
            }
        };
        let mut conn = Conn::new(id, role, stream, started, self.pipeline);
        let entry = conns.vacant_entry();
        // READABLE | WRITABLE once for the connection's whole life: the connect
        // finishing shows up as WRITABLE, a refused one as READABLE/error.
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = registry.register(&mut conn.stream, Token(entry.key()), interest) {
            stats.failed(id, format!("cannot add the socket to the poll: {e}"), 1);
            return false;
        }
        if role == Role::Active {
            self.first_active.get_or_insert(started);
        }
        stats.connect_started();
        entry.insert(conn);
        true
    }

    /// A limit stopped connection `id` from opening: say which, in words, and
    /// give up on it and all the rest (they would fail the same way).
    fn halt(&mut self, id: u32, e: &std::io::Error, stats: &mut Stats) {
        let left = self.remaining() + 1;
        self.next = self.connections + self.idle;
        self.reopens = 0;
        let open = units::plural(stats.counts().open + stats.counts().connecting, "connection");
        let why = match e.raw_os_error() {
            Some(libc::EMFILE) => match self.limits {
                Some(l) => format!(
                    "out of file descriptors (EMFILE): the open-file limit is {} (hard limit {}) and {open} \
                     are open; raise it before the run (ulimit -n; above the hard limit needs root or \
                     /etc/security/limits.conf) or use fewer connections",
                    units::grouped(l.soft),
                    units::grouped(l.hard)
                ),
                None => format!(
                    "out of file descriptors (EMFILE) with {open} open; raise the open-file limit \
                     (ulimit -n) or use fewer connections"
                ),
            },
            Some(libc::ENFILE) => format!(
                "the whole system is out of file descriptors (ENFILE, sysctl fs.file-max) with {open} open"
            ),
            _ => format!(
                "no free local port (EADDRNOTAVAIL) with {open} open: every connection to {} needs its \
                 own local port, net.ipv4.ip_local_port_range is {}, and ports of recently closed connections wait \
                 in TIME_WAIT for a minute; use fewer connections, wait, widen the range, or spread the \
                 connections over several local addresses (--source)",
                self.addr,
                local_port_range().map_or("unknown".to_string(), |(lo, hi)| format!(
                    "{lo}-{hi} ({})",
                    units::plural(u64::from(hi.saturating_sub(lo)) + 1, "port")
                ))
            ),
        };
        let left = u64::from(left);
        let not_opened = units::plural(left, "connection");
        stats.failed(id, format!("cannot open it: {why}; {not_opened} were not opened"), left);
    }

    /// The deadline has passed: open no more. Returns how many of the first
    /// ones were never started (replacements not opened are no loss).
    pub fn stop(&mut self) -> u32 {
        let left = self.connections + self.idle - self.next;
        self.next = self.connections + self.idle;
        self.reopens = 0;
        left
    }
}

/// A nonblocking connect to `addr`, from the local address `source` when one
/// is given (`--source`); it returns at once, and the handshake's end shows up
/// as a writable event.
fn connect_from(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(ip) = source else { return TcpStream::connect(addr) };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    bind_address_no_port(&socket);
    socket.bind(&SocketAddr::new(ip, 0).into())?;
    match socket.connect(&addr.into()) {
        Err(e) if e.raw_os_error() != Some(libc::EINPROGRESS) => return Err(e),
        _ => {}
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// Bind only the address now and choose the port at `connect()`, for this
/// destination, as a plain connect does (`IP_BIND_ADDRESS_NO_PORT`, as HAProxy
/// sets for its `source`). Without it `bind()` would reserve a port for the
/// address alone, from half the range. If the kernel refuses, the connect still
/// works, with fewer ports: nothing to report.
fn bind_address_no_port(socket: &Socket) {
    let _ = setsockopt(socket, IpBindAddressNoPort, &true);
}

/// Why a `--source` cannot be used to reach `target`, if it cannot: it must be
/// an address of this machine, of the target's family.
pub fn check_source(ip: IpAddr, target: SocketAddr) -> Result<(), String> {
    if ip.is_ipv4() != target.is_ipv4() {
        return Err(format!("--source {ip} cannot reach {target}: one is IPv4, the other IPv6"));
    }
    // Binding a UDP socket sends nothing, and fails unless the address is local.
    match UdpSocket::bind((ip, 0)) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("--source {ip} is not an address of this machine ({e})")),
    }
}

/// Say up front when a limit will stop the run from opening the `wanted`
/// connections from `sources` local addresses (0: the kernel's choice, one).
pub fn warn_about_limits(wanted: u64, sources: usize, limits: Option<NofileLimits>) {
    if let Some(l) = limits {
        if l.soft < wanted + FD_RESERVE {
            log::warn!(
                "the open-file limit is {} (hard limit {}): about {} fit but {} were asked; \
                 the rest will fail with EMFILE (raise the hard limit as root, or use fewer connections)",
                units::grouped(l.soft),
                units::grouped(l.hard),
                units::plural(l.soft.saturating_sub(FD_RESERVE), "connection"),
                units::grouped(wanted)
            );
        }
    }
    if let Some((lo, hi)) = local_port_range() {
        let addresses = sources.max(1) as u64;
        let ports = (u64::from(hi.saturating_sub(lo)) + 1) * addresses;
        if wanted > ports {
            log::warn!(
                "{} to one address need {} local ports, but net.ipv4.ip_local_port_range {lo}-{hi} \
                 on {addresses} local address(es) has only {}: the rest will fail with EADDRNOTAVAIL",
                units::plural(wanted, "connection"),
                units::grouped(wanted),
                units::grouped(ports)
            );
        }
    }
}

/// The ephemeral port range `connect()` picks local ports from (Linux).
fn local_port_range() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut parts = text.split_whitespace().map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) => Some((lo, hi)),
        _ => None,
    }
}
