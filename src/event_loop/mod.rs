//! The loop: one thread, one `mio::Poll`, every client at once.
//!
//! The course's server is iterative: `accept`, serve that one client until it
//! leaves, `accept` the next. A second client completes its handshake in the
//! kernel's backlog and then waits. This loop instead asks the kernel (epoll,
//! through mio) "which of my sockets can make progress?", and does only that
//! progress, never blocking on one client:
//!
//! ```text
//! loop {
//!     poll(events, timeout)            // sleep until some socket is ready
//!     for event in events {
//!         LISTENER        => accept every waiting client, admit it to the slab
//!         SIGNALS, WAKER  => stop accepting, let the open connections finish
//!         token           => its handler's turn            (service.rs)
//!     }
//!     connections that made all a turn's reads get another turn
//!     connections waiting for memory get a turn, as it frees (memory.rs)
//!     timers(now)                      // idle and handshake timeouts, stalls, accept retry, grace
//! }
//! ```
//!
//! This folder is the loop's machinery and nothing else, as redis's `ae.c` is
//! apart from its clients: what a connection does with its bytes is a
//! [`Service`]'s [`Handler`] (the echo server's is `server/echo.rs`). The loop
//! owns `Poll`, the listener, the slab of connections and every bound: who is
//! admitted (`admission.rs`), the memory all connections' unsent bytes share
//! (`memory.rs`) and the connections whose TCP stalled while they waited for
//! it (`stall.rs`), idle timeouts and the time a connection may take to set up
//! (a TLS handshake), both in O(1) (`idle.rs`), a short log under floods
//! (`throttle.rs`). Beside it: `accept.rs`
//! (taking clients), `timers.rs` (idle timeouts, stopping, the grace time),
//! `listen.rs` (binding, the split of the totals), `loops.rs` (`--loops N`: N
//! copies of this loop on their own threads), `stop.rs` (stopping loops from
//! another thread), `config.rs` and `summary.rs`.
//!
//! Contracts (as redis's `ae.c` writes them down):
//! - An error on one connection closes that connection, never the loop.
//! - Events may be spurious, and a token may be stale: its connection closed
//!   earlier in the same batch and the key may even be reused. Every handler
//!   copes, because each just tries its syscalls and takes `WouldBlock` as "no".
//! - A connection's tokens are its slab key times [`Handler::SOURCES`] plus the
//!   socket's number, so an event finds its connection with one array index.
//!   The listener's, the signal pipe's and the waker's tokens sit at the top
//!   of the token space (`usize::MAX` down), where those never reach.
//! - Nothing here blocks: every socket is nonblocking, the log and the
//!   recording go through bounded queues to threads of their own, and every
//!   table indexed by connection is sized once, at start.

mod accept;
pub mod admission;
mod config;
pub mod idle;
mod listen;
mod loops;
pub mod memory;
mod service;
mod stall;
mod stop;
mod summary;
pub mod throttle;
mod timers;

pub use config::Config;
pub use idle::InFlight;
pub use loops::{run, spawn, Running};
pub use memory::Budget;
pub use service::{Closed, Handler, Next, Readiness, Service, Turn, Wire, READS_PER_TURN};
pub use stop::Stopper;
pub use summary::Summary;

use std::fs::File;
use std::io::{self, ErrorKind};
use std::time::{Duration, Instant};

use log::trace;
use mio::net::TcpListener;
use mio::{Events, Poll, Token};
use slab::Slab;

use crate::recording::Recording;
use crate::signals::{Escalation, SignalPipe};
use crate::units::{grouped, plural};
use admission::Admission;
use idle::IdleList;
use service::Entry;
use stall::Stalls;
use throttle::{Line, LineQuota, Throttle};

/// The listening socket's token.
pub(crate) const LISTENER: Token = Token(usize::MAX);
/// The token of the pipe the signal handlers write to (`signals.rs`).
pub(crate) const SIGNALS: Token = Token(usize::MAX - 1);
/// The token of the waker other threads stop the loop with (`stop.rs`).
pub(crate) const WAKER: Token = Token(usize::MAX - 2);

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

/// Rate-limited log lines other than refusals (those are in [`admission::Refusals`]).
#[derive(Debug, Default)]
struct Warnings {
    accept: Throttle,
    /// `connection from` and `closing connection from`.
    lines: LineQuota,
}

/// One event loop and everything it owns.
#[derive(Debug)]
pub struct EventLoop<S: Service> {
    poll: Poll,
    /// What each admitted client becomes.
    service: S,
    /// `None` once shutdown has begun: no more accepting.
    listener: Option<TcpListener>,
    /// Signals, when this loop handles them (the `progjar` binary's loops do).
    signals: Option<SignalPipe>,
    /// Other threads' way to stop this loop.
    stopper: Stopper,
    /// Stop requests seen so far (signals and the stopper's), by one rule.
    escalation: Escalation,
    /// Every open connection; its slab key gives its tokens.
    connections: Slab<Entry<S::Handler>>,
    /// The one read buffer all connections share: data is handled before the
    /// next read, so no connection needs a buffer of its own while idle.
    buf: Vec<u8>,
    config: Config,
    max_connections: usize,
    idle: Option<IdleList>,
    /// Connections not set up yet (a TLS handshake not done, a
    /// relay not connected to its target), oldest
    /// first, for a service with a [`Service::setup_timeout`]: the same O(1)
    /// list as `idle`, since every connection has the same timeout and so
    /// accept order is deadline order. `None` for the plaintext echo, which
    /// then pays one `Option` check per turn.
    setup: Option<IdleList>,
    /// `--allow`, `--max-per-ip` and the per-address counts.
    admission: Admission,
    /// A descriptor held in reserve (on /dev/null) so that, out of descriptors,
    /// we can still accept and close the connections waiting in the backlog.
    reserve: Option<File>,
    retry_accept_at: Option<Instant>,
    /// Connections whose last turn made all its reads with data still queued:
    /// edge-triggered readiness will not report that data again, so the loop
    /// comes back to them itself, after the others' events.
    again: Vec<usize>,
    /// The list being served this turn; swapped with `again` so that neither
    /// is ever reallocated once it has grown.
    again_now: Vec<usize>,
    /// The memory every connection's unsent bytes share, and who waits for it.
    budget: Budget,
    /// Those waiting whose TCP stopped, found by looking once a second.
    stalls: Stalls,
    /// Set when shutdown begins: the end of the grace time.
    shutdown_at: Option<Instant>,
    summary: Summary,
    warnings: Warnings,
    /// `--record`: nothing when off.
    record: Recording,
}

impl<S: Service> EventLoop<S> {
    /// Serve until a stop request and the grace time end it; return what was done.
    pub fn run(mut self) -> io::Result<Summary> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        log::info!(
            target: S::LOG,
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
            for event in events.iter() {
                trace!(target: S::LOG, "event {}: {}", self.name(event.token()), Flags(event));
                match event.token() {
                    LISTENER => self.accept(),
                    SIGNALS | WAKER if self.on_stop_request(event.token()) => {
                        self.summary.forced = true;
                        return Ok(self.finish());
                    }
                    SIGNALS | WAKER => {}
                    token => {
                        let (key, source) =
                            (token.0 / S::Handler::SOURCES, token.0 % S::Handler::SOURCES);
                        self.turn(key, Readiness::of(event, source), now);
                    }
                }
            }
            self.serve_again(now);
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

    /// Connection `key`'s turn: let its handler make progress, close it if done.
    fn turn(&mut self, key: usize, ready: Readiness, now: Option<Instant>) {
        let Some(entry) = self.connections.get_mut(key) else {
            // Stale: the connection closed earlier in this batch of events.
            trace!(target: S::LOG, "event for closed connection {key}");
            return;
        };
        if let (Some(idle), Some(now)) = (&mut self.idle, now) {
            idle.touch(key, now);
        }
        let before = self.record.before(&entry.handler);
        let mut turn = Turn {
            registry: self.poll.registry(),
            key,
            buf: &mut self.buf,
            budget: &mut self.budget,
            lines: &mut self.warnings.lines,
        };
        let next = entry.handler.ready(ready, &mut turn);
        self.record.turn(key, ready, before, &entry.handler);
        if let Some(setup) = &mut self.setup {
            if entry.handler.set_up() {
                setup.remove(key);
            }
        }
        match next {
            Next::Wait => {}
            Next::Again if entry.queued_again => {}
            Next::Again => {
                entry.queued_again = true;
                self.again.push(key);
            }
            Next::Close(why) => self.close(key, why),
        }
    }

    /// Come back to the connections whose last turn made all its reads with
    /// more queued, after every event of this wake-up had its turn.
    fn serve_again(&mut self, now: Option<Instant>) {
        std::mem::swap(&mut self.again, &mut self.again_now);
        for i in 0..self.again_now.len() {
            let key = self.again_now[i];
            // The key may have closed (or even been reused) since: a
            // spurious turn is harmless, its read just says WouldBlock.
            if let Some(entry) = self.connections.get_mut(key) {
                entry.queued_again = false;
            }
            trace!(target: S::LOG, "again {}: its turn made all its reads", self.name_key(key));
            self.turn(key, Readiness::AGAIN, now);
        }
        self.again_now.clear();
    }

    /// Give the connections paused by the global budget a turn, oldest first,
    /// while it has room: one pass over those waiting now, so one that fills
    /// the budget again waits behind the rest.
    fn resume_waiting(&mut self, now: Option<Instant>) {
        for _ in 0..self.budget.waiting() {
            let Some(key) = self.budget.next_waiting() else { return };
            self.turn(key, Readiness::AGAIN, now);
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
            log::info!(target: S::LOG, "{quiet} ({} open)", grouped(self.connections.len() as u64));
        }
    }

    /// Drop a connection and log why.
    fn close(&mut self, key: usize, why: Closed) {
        let Some(entry) = self.connections.try_remove(key) else { return };
        self.record.close(key);
        let handler = &entry.handler;
        self.budget.refund(handler.held());
        // No epoll_ctl(DEL): dropping the handler closes its descriptors, and
        // epoll forgets a descriptor when its last copy closes (we never dup one).
        if let Some(idle) = &mut self.idle {
            idle.remove(key);
        }
        if let Some(setup) = &mut self.setup {
            setup.remove(key);
        }
        self.admission.left(handler.peer().ip());
        self.summary.moved += handler.moved();
        self.summary.count_close(why);
        let now = Instant::now();
        if self.connection_line(now, Line::Closed) {
            log::info!(
                target: S::LOG,
                "closing connection from {} ({}): {} {} in {:.3}s ({} open)",
                handler.peer(),
                why.describe(),
                plural(handler.moved(), "byte"),
                S::VERB,
                now.saturating_duration_since(entry.opened).as_secs_f64(),
                grouped(self.connections.len() as u64)
            );
        }
    }

    /// How the trace names a token: `listener`, `signals`, `waker`, or
    /// `conn 3` with its client's address (mio would print
    /// `Token(18446744073709551615)`).
    fn name(&self, token: Token) -> String {
        match token {
            LISTENER => "listener".into(),
            SIGNALS => "signals".into(),
            WAKER => "waker".into(),
            Token(t) => self.name_key(t / S::Handler::SOURCES),
        }
    }

    /// `conn 3 (127.0.0.1:50432)`, or `conn 3 (closed)`.
    fn name_key(&self, key: usize) -> String {
        match self.connections.get(key) {
            Some(entry) => format!("conn {key} ({})", entry.handler.peer()),
            None => format!("conn {key} (closed)"),
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
