//! The event loop: one thread, one `mio::Poll`, a slab of connections.
//!
//! Why one thread: a thread per connection (what `rust_echo_bench` does) needs
//! 10000 threads and their stacks for 10000 connections, and the scheduler, not
//! the server, then decides the numbers. One loop over nonblocking sockets is how
//! the server under test works too, so the client is the same kind of program.
//!
//! Each turn of the loop:
//! 1. start the connections that are due (`open.rs`);
//! 2. `poll()` until something is ready or the next timer (live line, next
//!    connect, deadline) is due;
//! 3. for each event, find the connection by its token (its slab key) and let it
//!    read, check and write (`conn.rs`); close it if it finished or failed;
//! 4. once a second: print the live line, check timeouts;
//! 5. at the deadline: start no new message, let in-flight ones finish.
//!
//! Ctrl-C (SIGINT) or SIGTERM moves the deadline to now, so the summary still
//! comes out (as iperf3 does); a second one ends the run at once.
//!
//! ## Clock reads
//! `Instant::now()` costs about 20-30 ns (a vDSO call, no syscall); a message
//! costs two syscalls here (one `write`, one `read`) of 1-10 µs each. So clock reads are cheap but not free,
//! and where they are taken decides what a latency means:
//! * The *echo* time of a message is the `now` read once right after `poll()`
//!   returns: the echo was in the kernel by then. Reading the clock again for
//!   each event would add the time this loop spent on the events before it in the
//!   same batch, i.e. measure the client's queue, not the server.
//! * The *send* time is read once per burst of writes, right after the `write()`
//!   that carried the message's first byte. Using the poll's `now` there instead
//!   would charge the server for the time this loop spent on earlier events
//!   before getting to this write (milliseconds in a batch of 1000 events).
//!
//! The result is one clock read per poll plus one per connection that starts a
//! message, well under 2 % of the work per message, and both ends of each
//! latency are accurate to a few µs whatever the batch size. (Reading the clock
//! once per poll for both ends would be cheaper still and fine at 50
//! connections, but at 10000 it inflates every latency by the batch's processing
//! time.) What remains is the loop's own delay before `poll()` is called again:
//! a client that is itself saturated reports its own queueing as latency, as any
//! closed-loop load generator does; the live line's open connections and msg/s
//! show when that happens.
//!
//! ## Stopping
//! With `-d`, at the deadline no new message starts; messages already started
//! are finished and their echoes awaited, then each connection sends its FIN and
//! waits for the server's. In-flight messages are not errors: the run waits at
//! most [`ECHO_TIMEOUT`] for them, and only a connection that received no byte
//! for that long counts as having lost data. With `-n` the run ends when every
//! connection has echoed its messages; the per-connection timeouts
//! ([`CONNECT_TIMEOUT`](crate::conn::CONNECT_TIMEOUT), [`ECHO_TIMEOUT`]) bound
//! it: a connection either makes progress or fails, so a dead or stuck server
//! cannot hang the tool.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Registry, Token};
use progjar::cli::Failure;
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::conn::{Conn, Fault, Next, Phase, Role, Shared, ECHO_TIMEOUT};
use crate::open::{local_port_range, Opener, FD_RESERVE};
use crate::pattern::Pattern;
use crate::report::Stats;

/// Events taken from the kernel per `poll()`. Larger batches mean fewer
/// `epoll_wait` calls when thousands of connections are busy; 1024 already makes
/// that call a small share of the work, and a batch is handled in about a millisecond.
const EVENTS_CAPACITY: usize = 1024;

/// Bytes given to one `write()`. A loopback socket's send buffer takes a few
/// hundred KiB at most, and 64 KiB chunks keep the pattern buffer in the CPU's
/// L2 cache while making the per-syscall cost small against the copy.
const WRITE_CHUNK: usize = 64 * 1024;

/// Bytes asked of one `read()`, for the same reasons as [`WRITE_CHUNK`]. Small
/// messages arrive many to a read; large ones take several reads, and the
/// check picks up at any offset.
const READ_CHUNK: usize = 64 * 1024;

/// The token of the signal pipe; slab keys (the connections' tokens) never reach it.
const SIGNALS: Token = Token(usize::MAX);

/// How often the live line is printed and the timeouts are checked.
const TICK: Duration = Duration::from_secs(1);

/// When the run stops.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// At this long after the start (`-d`).
    After(Duration),
    /// When every active connection has had this many messages echoed (`-n`).
    Messages(u64),
}

/// What to do: the command line, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The echo server.
    pub target: SocketAddr,
    /// Active connections.
    pub connections: u32,
    /// Idle connections.
    pub idle: u32,
    /// Connections started per second, or `None` for as fast as possible.
    pub connect_rate: Option<u32>,
    /// Bytes per message.
    pub message_size: usize,
    /// When to stop.
    pub stop: Stop,
    /// Messages in flight per connection.
    pub pipeline: u32,
}

/// What the run measured.
pub struct Outcome {
    /// The counters.
    pub stats: Stats,
    /// Seconds from the first active connect to the end.
    pub seconds: f64,
    /// Things to know that are not errors.
    pub notes: Vec<String>,
}

/// How a connection ends, for the counters.
enum End {
    /// Connected and no error.
    Ok,
    /// Could not connect, or an error later.
    Failed(Fault),
    /// The run ended before it connected.
    Unfinished,
}

/// Take connection `key` out of the loop, count how it ended, and close it.
fn close(conns: &mut Slab<Conn>, registry: &Registry, key: usize, end: End, sh: &mut Shared) {
    let Some(mut conn) = conns.try_remove(key) else { return };
    // Ignoring a failed deregister is safe: closing the socket (on drop, below)
    // removes it from epoll anyway; deregistering first is just tidy.
    let _ = registry.deregister(&mut conn.stream);
    if conn.phase == Phase::Connecting {
        sh.stats.connecting -= 1;
    } else {
        sh.stats.open -= 1;
    }
    if conn.role == Role::Active {
        sh.active_alive -= 1;
    }
    match end {
        End::Ok => {
            sh.stats.connections_ok += 1;
            sh.stats.abandoned += conn.in_flight();
        }
        End::Failed(fault) => {
            sh.stats.errors.push(fault.0);
            sh.stats.connections_failed += 1;
        }
        End::Unfinished => sh.stats.connections_unfinished += 1,
    }
    // Dropping `conn` closes the socket. With nothing unread this sends a FIN;
    // with unread echo (an abandoned or failed connection) the kernel sends a reset.
}

/// Say up front when a limit will stop the run from opening what was asked.
fn warn_about_limits(config: &Config, limits: Option<progjar::limits::NofileLimits>) {
    let wanted = u64::from(config.connections) + u64::from(config.idle);
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

/// Run the stress test.
pub fn run(config: &Config) -> Result<Outcome, Failure> {
    // Every connection is a file descriptor: take all the process may have.
    let limits = match progjar::limits::raise_nofile() {
        Ok(l) => Some(l),
        Err(e) => {
            log::warn!("cannot read the open-file limit: {e}");
            None
        }
    };
    warn_about_limits(config, limits);

    let mut poll =
        Poll::new().map_err(|e| Failure::new(1, format!("cannot create the poll: {e}")))?;
    let mut events = Events::with_capacity(EVENTS_CAPACITY);
    let mut signals = Signals::new([libc::SIGINT, libc::SIGTERM])
        .and_then(|mut s| poll.registry().register(&mut s, SIGNALS, Interest::READABLE).map(|()| s))
        .map_err(|e| Failure::new(1, format!("cannot install signal handlers: {e}")))?;
    let mut interrupted = false;
    let total = config.connections as usize + config.idle as usize;
    let mut conns: Slab<Conn> = Slab::with_capacity(total);
    let start = Instant::now();
    let mut sh = Shared {
        pattern: Pattern::new(config.message_size as u64),
        pipeline: u64::from(config.pipeline),
        per_connection: match config.stop {
            Stop::Messages(n) => Some(n),
            Stop::After(_) => None,
        },
        stopping: false,
        out: vec![0; WRITE_CHUNK].into_boxed_slice(),
        inp: vec![0; READ_CHUNK].into_boxed_slice(),
        expect: vec![0; READ_CHUNK].into_boxed_slice(),
        active_alive: 0,
        stats: Stats::new(start),
    };
    let mut opener = Opener::new(
        config.target,
        config.connections,
        config.idle,
        config.connect_rate,
        u64::from(config.pipeline),
        start,
        limits,
    );
    let mut deadline = match config.stop {
        Stop::After(d) => Some(start + d),
        Stop::Messages(_) => None,
    };
    // Set at the deadline: the latest moment to wait for in-flight echoes.
    let mut drain_end: Option<Instant> = None;
    let mut next_tick = start + TICK;
    let mut notes = Vec::new();

    loop {
        let now = Instant::now();
        if !sh.stopping {
            opener.open_due(now, poll.registry(), &mut conns, &mut sh);
        }
        // Over when nothing is left to open, no connect is in progress and every
        // active connection has finished (idle ones are closed below).
        if opener.remaining() == 0 && sh.stats.connecting == 0 && sh.active_alive == 0 {
            break;
        }
        if drain_end.is_some_and(|end| now >= end) {
            break;
        }

        // Sleep until something is ready or the next timer is due.
        let mut wake = next_tick;
        if let Some(t) = opener.next_due() {
            wake = wake.min(t);
        }
        if let (Some(d), false) = (deadline, sh.stopping) {
            wake = wake.min(d);
        }
        if let Some(end) = drain_end {
            wake = wake.min(end);
        }
        if let Err(e) = poll.poll(&mut events, Some(wake.saturating_duration_since(now))) {
            // A signal arrived while waiting: nothing is wrong, just poll again.
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(Failure::new(1, format!("poll failed: {e}")));
        }
        // One clock read for the whole batch: it stamps every echo seen in it
        // (the module docs explain why).
        let now = Instant::now();

        for event in events.iter() {
            if event.token() == SIGNALS {
                if signals.pending().next().is_some() {
                    if interrupted {
                        // The second signal: stop now, count what is there.
                        drain_end = Some(now);
                    } else {
                        // The first: stop as at the deadline, and say so.
                        interrupted = true;
                        deadline = Some(now);
                        notes.push("interrupted: stopped early by a signal".to_string());
                    }
                }
                continue;
            }
            let key = event.token().0;
            // Every token is a slab key. A connection closed earlier in this loop
            // turn cannot have a later event in the same batch (epoll reports each
            // socket once per call), but skipping an unknown key costs nothing.
            let Some(conn) = conns.get_mut(key) else { continue };
            match conn.on_event(event, &mut sh, now) {
                Ok(Next::Keep) => {}
                Ok(Next::Done) => close(&mut conns, poll.registry(), key, End::Ok, &mut sh),
                Err(fault) => close(&mut conns, poll.registry(), key, End::Failed(fault), &mut sh),
            }
        }

        if now >= next_tick {
            eprintln!("{}", sh.stats.live_line(now, now.saturating_duration_since(start)));
            // A scan of every connection once a second: microseconds even at 10000.
            let expired: Vec<(usize, Fault)> = conns
                .iter()
                .filter_map(|(key, c)| c.check_timeouts(now, &sh).map(|f| (key, f)))
                .collect();
            for (key, fault) in expired {
                close(&mut conns, poll.registry(), key, End::Failed(fault), &mut sh);
            }
            while next_tick <= now {
                next_tick += TICK;
            }
        }

        if let (Some(d), false) = (deadline, sh.stopping) {
            if now >= d {
                sh.stopping = true;
                drain_end = Some(now + ECHO_TIMEOUT);
                let never = opener.stop();
                sh.stats.connections_unfinished += u64::from(never);
                let keys: Vec<usize> = conns.iter().map(|(key, _)| key).collect();
                let mut still_connecting = 0u64;
                for key in keys {
                    let Some(conn) = conns.get_mut(key) else { continue };
                    if conn.phase == Phase::Connecting {
                        still_connecting += 1;
                        close(&mut conns, poll.registry(), key, End::Unfinished, &mut sh);
                        continue;
                    }
                    match conn.on_stop(&sh) {
                        Ok(Next::Keep) => {}
                        Ok(Next::Done) => close(&mut conns, poll.registry(), key, End::Ok, &mut sh),
                        Err(fault) => {
                            close(&mut conns, poll.registry(), key, End::Failed(fault), &mut sh)
                        }
                    }
                }
                if never + still_connecting as u32 > 0 {
                    notes.push(format!(
                        "{} connections were not connected by the deadline ({never} not started, {still_connecting} \
                         still connecting); give -d more time or raise --connect-rate",
                        u64::from(never) + still_connecting
                    ));
                }
            }
        }
    }

    // The end: count what is left. Idle connections that are still up did their
    // job; active ones still waiting either stalled (an error) or were in flight.
    let end = Instant::now();
    let keys: Vec<usize> = conns.iter().map(|(key, _)| key).collect();
    for key in keys {
        let Some(conn) = conns.get(key) else { continue };
        let how = if conn.phase == Phase::Connecting {
            End::Unfinished
        } else if let Some(fault) = conn.check_timeouts(end, &sh) {
            End::Failed(fault)
        } else {
            End::Ok
        };
        close(&mut conns, poll.registry(), key, how, &mut sh);
    }
    let from = opener.first_active.unwrap_or(start);
    let seconds = end.saturating_duration_since(from).as_secs_f64();
    Ok(Outcome { stats: sh.stats, seconds, notes })
}
