//! The echo server: one thread, one `mio::Poll`, every client at once.
//!
//! The course's server is iterative: `accept`, serve that one client until it
//! leaves, `accept` the next. A second client completes its handshake in the
//! kernel's backlog and then waits. This server instead asks the kernel (epoll,
//! through mio) "which of my sockets can make progress?", and does only that
//! progress, never blocking on one client:
//!
//! ```text
//! loop {
//!     poll(events, timeout)            // sleep until some socket is ready
//!     for event in events {
//!         LISTENER => accept every waiting client, register it in the slab
//!         SIGNALS  => stop accepting, let the open connections finish
//!         token    => connections[token].ready(event)   (connection.rs)
//!     }
//!     connections that used their read budget get another turn
//!     connections waiting for memory get a turn, as it frees (memory.rs)
//!     timers(now)                      // idle timeouts, accept retry, grace
//! }
//! ```
//!
//! The server owns `Poll`, the listener, the slab of connections and
//! accepting; everything about one client's bytes is in `connection.rs`.
//! A connection's slab key *is* its `mio::Token`, so an event finds its
//! connection with one array index.
//!
//! Contracts (as redis's `ae.c` writes them down):
//! - An error on one connection closes that connection, never the server.
//! - Events may be spurious, and a token may be stale: its connection closed
//!   earlier in the same batch and the key may even be reused. Every handler
//!   copes, because each just tries its syscalls and takes `WouldBlock` as "no".
//! - The listener and signal tokens sit at the top of the token space
//!   (`usize::MAX`, `usize::MAX - 1`) where slab keys never reach.
//!
//! The loop is here; the rest of the server is one concept per file:
//! `accept.rs` (taking and admitting clients), `timers.rs` (idle timeouts,
//! signals, the grace time and the summary), `listen.rs` (binding, the
//! open-file limit, the split of the totals) and `loops.rs` (`--loops N`: N
//! copies of this loop on their own threads, sharing nothing per echo).

mod accept;
mod listen;
mod loops;
mod timers;

pub use loops::run;

use std::fs::File;
use std::io::{self, ErrorKind};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use log::{info, trace};
use mio::net::TcpListener;
use mio::{Events, Poll, Token};
use slab::Slab;

use crate::access::{Admission, Cidr, Refusals};
use crate::connection::{Closed, Connection, Next, Readiness};
use crate::idle::IdleList;
use crate::memory::Budget;
use crate::recording::{Options, Recording};
use crate::signals::SignalPipe;
use crate::throttle::{Line, LineBudget, Throttle};
use crate::units::{grouped, plural};

/// The listening socket's token.
const LISTENER: Token = Token(usize::MAX);
/// The token of the pipe the signal handlers write to (`signals.rs`).
const SIGNALS: Token = Token(usize::MAX - 1);

/// Largest `--read-size`: 16 MiB is far past where bigger reads stop paying
/// (the kernel's socket buffers are a few MiB), and keeps the one shared
/// buffer's allocation sane.
pub const MAX_READ_SIZE: usize = 16 * 1024 * 1024;

/// How many readiness events one `poll` returns at most. More simply wait for
/// the next call; 1024 amortises the syscall over many busy connections while
/// the array (about 12 KiB) stays in cache.
const EVENTS_CAPACITY: usize = 1024;

/// After a `poll` that filled the event array (more may be waiting), idle
/// timeouts wait for a poll that did not, so that no client is expired while
/// its event is still queued; but at most this many in a row, so that a flood
/// of busy clients cannot keep the silent ones open.
const MAX_DEFERRED_TIMERS: u32 = 16;

/// When `accept` fails for a reason that may pass (out of kernel memory, no
/// descriptor to shed with), try again after this long rather than spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The server's settings, from `progjar server`'s command line.
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
    /// Unsent bytes one connection may hold before we stop reading it.
    pub max_pending: usize,
    /// Memory all connections' unsent bytes may hold together
    /// (`--max-pending-total`); `None` derives it from the process's memory
    /// limit ([`crate::memory::default_total`]). The real bound is this plus one
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
    /// `--record FILE`: what the loop does at each wake-up (`record.rs`); with
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

/// What the server did, for the one-line summary at exit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Connections accepted and served.
    pub served: u64,
    /// Bytes echoed back over all connections.
    pub echoed: u64,
    /// Closed at accept, by reason.
    pub refused: Refusals,
    /// Closed for `--idle-timeout`.
    pub idle_closed: u64,
    /// Stopped by a second signal instead of finishing.
    pub forced: bool,
}

impl Summary {
    /// Add another loop's summary to this one.
    pub fn add(&mut self, other: &Summary) {
        self.served += other.served;
        self.echoed += other.echoed;
        self.refused.add(&other.refused);
        self.idle_closed += other.idle_closed;
        self.forced |= other.forced;
    }

    /// `served 3 connections, echoed 138 bytes; refused 1 not in --allow`.
    pub fn line(&self) -> String {
        let idle = if self.idle_closed > 0 {
            format!("; {} closed idle", grouped(self.idle_closed))
        } else {
            String::new()
        };
        format!(
            "served {}, echoed {}{}{idle}",
            plural(self.served, "connection"),
            plural(self.echoed, "byte"),
            self.refused.summary()
        )
    }
}

/// Rate-limited log lines other than refusals (those are in [`Refusals`]).
#[derive(Debug, Default)]
struct Warnings {
    accept: Throttle,
    /// `connection from` and `closing connection from`.
    lines: LineBudget,
}

/// The event loop and everything it owns.
#[derive(Debug)]
pub struct Server {
    poll: Poll,
    /// `None` once shutdown has begun: no more accepting.
    listener: Option<TcpListener>,
    signals: Option<SignalPipe>,
    /// Every open connection; its key is its token.
    connections: Slab<Connection>,
    /// The one read buffer all connections share: data is written back before
    /// the next read, so no connection needs a buffer of its own while idle.
    buf: Vec<u8>,
    config: Config,
    max_connections: usize,
    idle: Option<IdleList>,
    /// `--allow`, `--max-per-ip` and the per-address counts.
    admission: Admission,
    /// A descriptor held in reserve (on /dev/null) so that, out of descriptors,
    /// we can still accept and close the connections waiting in the backlog.
    reserve: Option<File>,
    retry_accept_at: Option<Instant>,
    /// Connections whose last turn ran out of read budget with data still
    /// queued: edge-triggered readiness will not report that data again, so
    /// the loop comes back to them itself, after the others' events.
    again: Vec<usize>,
    /// The list being served this turn; swapped with `again` so that neither
    /// is ever reallocated once it has grown.
    again_now: Vec<usize>,
    /// The memory every connection's unsent bytes share, and who waits for it.
    budget: Budget,
    /// Set when shutdown begins: the end of the grace time.
    shutdown_at: Option<Instant>,
    summary: Summary,
    warnings: Warnings,
    /// `--record`: nothing when off (`record.rs`).
    record: Recording,
}

impl Server {
    /// Serve until a signal and the grace time end it; return what was done.
    pub fn run(mut self) -> io::Result<Summary> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        info!(
            "waiting for a connection (at most {} at once)",
            grouped(self.max_connections as u64)
        );
        // Full event arrays in a row: more events may be queued in the kernel.
        let mut full_polls = 0u32;
        loop {
            let timeout = self.poll_timeout(full_polls);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                // A signal arrived while we slept in epoll_wait. Its handler
                // has already written to the signal pipe: poll again to see it.
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.record.wake(&events);
            // One clock read per wakeup, and only when some timer needs it.
            let now = self.needs_clock().then(Instant::now);
            std::mem::swap(&mut self.again, &mut self.again_now);
            for event in events.iter() {
                trace!("event {}: {}", self.name(event.token()), Flags(event));
                match event.token() {
                    LISTENER => self.accept(),
                    SIGNALS => {
                        if self.on_signal() {
                            self.summary.forced = true;
                            return Ok(self.finish());
                        }
                    }
                    token => self.connection_ready(token, Readiness::of(event), now),
                }
            }
            for i in 0..self.again_now.len() {
                let key = self.again_now[i];
                // The key may have closed (or even been reused) since: a
                // spurious turn is harmless, its read just says WouldBlock.
                if let Some(conn) = self.connections.get_mut(key) {
                    conn.queued_again = false;
                }
                trace!("again {}: its turn ran out of read budget", self.name(Token(key)));
                self.connection_ready(Token(key), Readiness::AGAIN, now);
            }
            self.again_now.clear();
            self.resume_waiting(now);
            full_polls = match events.iter().count() {
                EVENTS_CAPACITY => full_polls + 1,
                _ => 0,
            };
            if let Some(now) = now {
                self.timers(now, full_polls.is_multiple_of(MAX_DEFERRED_TIMERS));
            }
            if self.shutdown_at.is_some() && self.connections.is_empty() {
                return Ok(self.finish());
            }
        }
    }

    /// How long the next `poll` may sleep: until the next timer, or not at all
    /// when there is work no event will announce.
    fn poll_timeout(&self, full_polls: u32) -> Option<Duration> {
        // A close (e.g. by a timer) may have made room for connections
        // waiting for memory.
        let room = self.budget.waiting() > 0 && !self.budget.spent();
        if self.again.is_empty() && full_polls == 0 && !room {
            self.next_deadline().map(|d| d.saturating_duration_since(Instant::now()))
        } else {
            // Some connection has data waiting, the kernel more events, or
            // the budget room: just collect new events.
            Some(Duration::ZERO)
        }
    }

    /// A connection's socket is ready: let it make progress, close it if done.
    fn connection_ready(&mut self, token: Token, ready: Readiness, now: Option<Instant>) {
        let Some(conn) = self.connections.get_mut(token.0) else {
            // Stale: the connection closed earlier in this batch of events.
            trace!("event for closed token {}", token.0);
            return;
        };
        if let (Some(idle), Some(now)) = (&mut self.idle, now) {
            idle.touch(token.0, now);
        }
        let before = self.record.before(conn);
        let next = conn.ready(ready, self.poll.registry(), token, &mut self.buf, &mut self.budget);
        self.record.turn(token, ready, before, conn);
        match next {
            Next::Wait => {}
            Next::Again if conn.queued_again => {}
            Next::Again => {
                conn.queued_again = true;
                self.again.push(token.0);
            }
            Next::Close(why) => self.close(token.0, why),
        }
    }

    /// Give the connections paused by the global budget a turn, oldest first,
    /// while it has room: one pass over those waiting now, so one that fills
    /// the budget again waits behind the rest.
    fn resume_waiting(&mut self, now: Option<Instant>) {
        for _ in 0..self.budget.waiting() {
            let Some(key) = self.budget.next_waiting() else { return };
            self.connection_ready(Token(key), Readiness::AGAIN, now);
        }
    }

    /// May a per-connection line be printed at `now`? Reports the lines a
    /// past second kept quiet first, so the log stays in order.
    fn connection_line(&mut self, now: Instant, line: Line) -> bool {
        self.log_quiet_lines(now);
        self.warnings.lines.allow(now, line)
    }

    /// `... and 7,640 more connections opened ... (12 open)` once their
    /// second is over; it ends like the lines it stands for.
    fn log_quiet_lines(&mut self, now: Instant) {
        if let Some(quiet) = self.warnings.lines.end_window(now) {
            info!("{quiet} ({} open)", grouped(self.connections.len() as u64));
        }
    }

    /// Drop a connection and log why.
    fn close(&mut self, key: usize, why: Closed) {
        let Some(conn) = self.connections.try_remove(key) else { return };
        self.record.close(key);
        self.budget.refund(conn.held());
        // No epoll_ctl(DEL): dropping `conn` closes its descriptor, and epoll
        // forgets a descriptor when its last copy closes (we never dup one).
        if let Some(idle) = &mut self.idle {
            idle.remove(key);
        }
        self.forget_ip(conn.peer);
        self.summary.echoed += conn.echoed;
        let now = Instant::now();
        if self.connection_line(now, Line::Closed) {
            info!(
                "closing connection from {} ({}): {} echoed in {:.3}s ({} open)",
                conn.peer,
                why.describe(),
                plural(conn.echoed, "byte"),
                now.saturating_duration_since(conn.opened).as_secs_f64(),
                grouped(self.connections.len() as u64)
            );
        }
    }

    /// How the trace names a token: `listener`, `signals`, or `conn 3` with
    /// its client's address (mio would print `Token(18446744073709551615)`).
    fn name(&self, token: Token) -> String {
        match token {
            LISTENER => "listener".into(),
            SIGNALS => "signals".into(),
            Token(key) => match self.connections.get(key) {
                Some(conn) => format!("conn {key} ({})", conn.peer),
                None => format!("conn {key} (closed)"),
            },
        }
    }
}

/// An event's readiness in words for the trace, e.g. `readable writable`.
struct Flags<'a>(&'a mio::event::Event);

impl std::fmt::Display for Flags<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = self.0;
        let flags = [
            (e.is_readable(), "readable"),
            (e.is_writable(), "writable"),
            (e.is_read_closed(), "read-closed"),
            (e.is_write_closed(), "write-closed"),
            (e.is_error(), "error"),
        ];
        let mut sep = "";
        for (_, word) in flags.iter().filter(|(on, _)| *on) {
            write!(f, "{sep}{word}")?;
            sep = " ";
        }
        Ok(())
    }
}
