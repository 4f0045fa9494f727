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
//!   TIME_WAIT for a minute.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Interest, Registry, Token};
use progjar::limits::NofileLimits;
use slab::Slab;

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
            first_active: None,
            limits,
        }
    }

    /// Connections not started yet.
    pub fn remaining(&self) -> u32 {
        self.connections + self.idle - self.next
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
        let due = self.due(now).min(self.next + MAX_CONNECTS_PER_TURN);
        while self.next < due {
            let (id, role) = self.identity(self.next);
            self.next += 1;
            // A fresh clock read per connect (not the turn's `now`): each connect()
            // is a syscall of several µs, and 256 of them in a turn would otherwise
            // charge the last one for all the others.
            let started = Instant::now();
            let mut conn = match Conn::connect(id, role, self.addr, started, self.pipeline) {
                Ok(conn) => conn,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EMFILE | libc::ENFILE | libc::EADDRNOTAVAIL) => {
                        self.halt(id, &e, stats);
                        return active;
                    }
                    // Anything else (e.g. ENETUNREACH) fails this connection only.
                    _ => {
                        stats.failed(
                            format!("connection {id}: connect failed: {}", describe(&e)),
                            1,
                        );
                        continue;
                    }
                },
            };
            let entry = conns.vacant_entry();
            // READABLE | WRITABLE once for the connection's whole life: the connect
            // finishing shows up as WRITABLE, a refused one as READABLE/error.
            if let Err(e) = registry.register(
                &mut conn.stream,
                Token(entry.key()),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                stats.failed(format!("connection {id}: cannot add the socket to the poll: {e}"), 1);
                continue;
            }
            if role == Role::Active {
                self.first_active.get_or_insert(started);
                active += 1;
            }
            stats.connect_started();
            entry.insert(conn);
        }
        active
    }

    /// A limit stopped connection `id` from opening: say which, in words, and
    /// give up on it and all the rest (they would fail the same way).
    fn halt(&mut self, id: u32, e: &std::io::Error, stats: &mut Stats) {
        let left = self.remaining() + 1;
        self.next = self.connections + self.idle;
        let open = stats.counts().open + stats.counts().connecting;
        let why = match e.raw_os_error() {
            Some(libc::EMFILE) => match self.limits {
                Some(l) => format!(
                    "out of file descriptors (EMFILE): the open-file limit is {} (hard limit {}) and {open} connections \
                     are open; raise it before the run (ulimit -n; above the hard limit needs root or \
                     /etc/security/limits.conf) or use fewer connections",
                    l.soft, l.hard
                ),
                None => format!(
                    "out of file descriptors (EMFILE) with {open} connections open; raise the open-file limit \
                     (ulimit -n) or use fewer connections"
                ),
            },
            Some(libc::ENFILE) => format!(
                "the whole system is out of file descriptors (ENFILE, sysctl fs.file-max) with {open} connections open"
            ),
            _ => format!(
                "no free local port (EADDRNOTAVAIL) with {open} connections open: every connection to {} needs its \
                 own local port, net.ipv4.ip_local_port_range is {}, and ports of recently closed connections wait \
                 in TIME_WAIT for a minute; use fewer connections, wait, or widen the range",
                self.addr,
                local_port_range().map_or("unknown".to_string(), |(lo, hi)| format!(
                    "{lo}-{hi} ({} ports)",
                    hi.saturating_sub(lo) + 1
                ))
            ),
        };
        stats.failed(
            format!("connection {id}: cannot open it: {why}; {left} connections were not opened"),
            u64::from(left),
        );
    }

    /// The deadline has passed: open no more. Returns how many were never started.
    pub fn stop(&mut self) -> u32 {
        let left = self.remaining();
        self.next = self.connections + self.idle;
        left
    }
}

/// Say up front when a limit will stop the run from opening the `wanted`
/// connections.
pub fn warn_about_limits(wanted: u64, limits: Option<NofileLimits>) {
    if let Some(l) = limits {
        if l.soft < wanted + FD_RESERVE {
            log::warn!(
                "the open-file limit is {} (hard limit {}): about {} connections fit but {wanted} were asked; \
                 the rest will fail with EMFILE (raise the hard limit as root, or use fewer connections)",
                l.soft,
                l.hard,
                l.soft.saturating_sub(FD_RESERVE)
            );
        }
    }
    if let Some((lo, hi)) = local_port_range() {
        let ports = u64::from(hi.saturating_sub(lo)) + 1;
        if wanted > ports {
            log::warn!(
                "{wanted} connections to one address need {wanted} local ports, but \
                 net.ipv4.ip_local_port_range {lo}-{hi} has only {ports}: the rest will fail with EADDRNOTAVAIL"
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
