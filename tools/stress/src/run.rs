//! The event loop: one thread, one `mio::Poll`, a slab of connections, in a
//! [`Stress`] struct whose `run` fits on one screen, like the server's.
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
//! comes out (as iperf3 does); a second one ends the run at once (exit 130).
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
//! most twice `--echo-timeout` for them ([`Shared::lost_after`]), and only a
//! connection that received no byte for that long counts as having lost data.
//! An echo that comes back later than `--echo-timeout` is reported as late, not
//! lost. With `-n` the run ends when every connection has echoed its messages;
//! the per-connection timeouts ([`CONNECT_TIMEOUT`](crate::conn::CONNECT_TIMEOUT)
//! and the same lost-echo bound) bound it: a connection either makes progress or
//! fails, so a dead or stuck server cannot hang the tool.

use std::io::{ErrorKind, Write as _};
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::{Events, Interest, Poll, Token};
use progjar::cli::{Failure, EXIT_CLOSED_OUTPUT, EXIT_FAILURE};
use progjar::signals::{Escalation, SignalPipe, Stop};
use progjar::units;
use slab::Slab;

use crate::config::{Config, Until};
use crate::conn::{Conn, Fault, Next, Role, Shared};
use crate::open::{warn_about_limits, Opener};
use crate::pattern::Pattern;
use crate::stats::{End, Stats};
use crate::tls::{Tally, TlsShared};

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

/// What the run measured.
pub struct Outcome {
    /// The counters.
    pub stats: Stats,
    /// Seconds from the first active connect to the end.
    pub seconds: f64,
    /// Things to know that are not errors.
    pub notes: Vec<String>,
    /// A signal stopped the run before its end.
    pub interrupted: bool,
    /// A second signal ended the run at once.
    pub forced: bool,
    /// `--tls`: the handshakes, and what they agreed on.
    pub tls: Option<Tally>,
}

/// The moments the loop must wake up for, besides socket events.
struct Deadlines {
    /// The next live line and timeout check.
    tick: Instant,
    /// When to stop starting messages (`-d`, or now after a signal); `None`
    /// with `-n`, and once the stop has begun.
    stop: Option<Instant>,
    /// Set when the stop begins: the latest moment to wait for in-flight echoes.
    drain_end: Option<Instant>,
}

impl Deadlines {
    /// The earliest of them, and of `next_connect`.
    fn next(&self, next_connect: Option<Instant>) -> Instant {
        [next_connect, self.stop, self.drain_end]
            .into_iter()
            .flatten()
            .fold(self.tick, Instant::min)
    }
}

/// The whole run: the poll, the connections, and what decides when to stop.
pub struct Stress {
    poll: Poll,
    signals: SignalPipe,
    /// Signals received so far, by the one rule (`progjar::signals`): the
    /// first stops gently, the second at once.
    escalation: Escalation,
    /// The connections; a connection's slab key is its `mio::Token`.
    connections: Slab<Conn>,
    /// Active connections started and not closed yet: the run is over when
    /// this is 0 and nothing is left to open or connecting.
    active: u64,
    /// Active and idle connections asked for: all open ends the ramp-up.
    wanted: u64,
    /// `--per-connection`: an active connection that ended well is replaced.
    reopen: bool,
    opener: Opener,
    deadlines: Deadlines,
    /// The plan, the scratch buffers and the counters every connection uses.
    shared: Shared,
    start: Instant,
    notes: Vec<String>,
    /// The live lines still go out (false once stderr failed).
    live: bool,
}

/// Run the stress test.
pub fn run(config: &Config) -> Result<Outcome, Failure> {
    Stress::new(config)?.run()
}

impl Stress {
    /// Raise the open-file limit, set up the poll and the signals; open nothing yet.
    pub fn new(config: &Config) -> Result<Stress, Failure> {
        // Every connection is a file descriptor: take all the process may have.
        let limits = match progjar::limits::raise_nofile() {
            Ok(l) => Some(l),
            Err(e) => {
                log::warn!("cannot read the open-file limit: {e}");
                None
            }
        };
        let total = u64::from(config.connections) + u64::from(config.idle);
        warn_about_limits(total, config.sources.len(), limits);
        let poll = Poll::new()
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot create the poll: {e}")))?;
        let signals = SignalPipe::new(&[libc::SIGINT, libc::SIGTERM])
            .and_then(|mut s| {
                poll.registry().register(&mut s, SIGNALS, Interest::READABLE).map(|()| s)
            })
            .map_err(|e| {
                Failure::new(EXIT_FAILURE, format!("cannot install signal handlers: {e}"))
            })?;
        let start = Instant::now();
        let pipeline = u64::from(config.pipeline);
        let tls = config
            .tls
            .as_ref()
            .map(|t| TlsShared::new(t.target.clone(), t.checked, READ_CHUNK, WRITE_CHUNK));
        // With TLS a read's data is decrypted into `inp`: as long as the TLS bytes it came in.
        let inp = tls.as_ref().map_or(READ_CHUNK, |t| t.incoming.len());
        let (stop, per_connection) = match config.until {
            Until::After(d) => (Some(start + d), config.per_connection),
            Until::Messages(n) => (None, Some(n)),
        };
        Ok(Stress {
            poll,
            signals,
            escalation: Escalation::default(),
            connections: Slab::with_capacity(total as usize),
            active: 0,
            wanted: total,
            reopen: config.per_connection.is_some(),
            opener: Opener::new(config, start, limits),
            deadlines: Deadlines { tick: start + TICK, stop, drain_end: None },
            shared: Shared {
                pattern: Pattern::new(config.message_size as u64),
                pipeline,
                per_connection,
                stopping: false,
                echo_timeout: config.echo_timeout,
                out: vec![0; WRITE_CHUNK].into_boxed_slice(),
                inp: vec![0; inp].into_boxed_slice(),
                expect: vec![0; inp].into_boxed_slice(),
                stats: Stats::new(start),
                tls,
            },
            start,
            notes: Vec::new(),
            live: true,
        })
    }

    /// Open, poll, dispatch, check the timers, until the run is over.
    pub fn run(mut self) -> Result<Outcome, Failure> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let now = Instant::now();
            if !self.shared.stopping {
                let registry = self.poll.registry();
                let stats = &mut self.shared.stats;
                self.active += self.opener.open_due(now, registry, &mut self.connections, stats);
            }
            if self.is_over(now) {
                return Ok(self.finish());
            }
            let wake = self.deadlines.next(self.opener.next_due());
            if let Err(e) = self.poll.poll(&mut events, Some(wake.saturating_duration_since(now))) {
                // A signal arrived while waiting: nothing is wrong, just poll again.
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(Failure::new(EXIT_FAILURE, format!("poll failed: {e}")));
            }
            // One clock read for the whole batch: it stamps every echo seen in it
            // (the module docs explain why).
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    SIGNALS => self.on_signal(now),
                    Token(key) => self.on_ready(key, event, now),
                }
            }
            self.note_ramp_end(now);
            if now >= self.deadlines.tick {
                self.on_tick(now)?;
            }
            if self.deadlines.stop.is_some_and(|stop| now >= stop) {
                self.begin_stop(now);
            }
        }
    }

    /// Over when nothing is left to open, no connect is in progress and every
    /// active connection has finished (idle ones are closed in `finish`), or
    /// when the wait for in-flight echoes has run out.
    fn is_over(&self, now: Instant) -> bool {
        let all_done = self.opener.remaining() == 0
            && self.shared.stats.counts().connecting == 0
            && self.active == 0;
        all_done || self.deadlines.drain_end.is_some_and(|end| now >= end)
    }

    /// The ramp-up ends when every connection asked for has been started and
    /// none is still connecting, or all are open (with `--per-connection` some
    /// are always connecting). A check per loop turn, not per message.
    fn note_ramp_end(&mut self, now: Instant) {
        let stats = &mut self.shared.stats;
        if stats.timeline().steady_at.is_none() {
            let c = stats.counts();
            if (self.opener.remaining() == 0 && c.connecting == 0) || c.open >= self.wanted {
                stats.steady(now);
            }
        }
    }

    /// A readiness event for connection `key`.
    fn on_ready(&mut self, key: usize, event: &Event, now: Instant) {
        // A connection closed earlier in this batch cannot have a later event in
        // it (epoll reports each socket once per call), but skipping costs nothing.
        let Some(conn) = self.connections.get_mut(key) else { return };
        match conn.on_event(event, &mut self.shared, now) {
            Ok(Next::Keep) => {}
            Ok(Next::Done) => self.close(key, End::Ok),
            Err(fault) => self.close(key, End::Failed(fault.conn, fault.what)),
        }
    }

    /// SIGINT or SIGTERM: the first stops as at the deadline, and says so; the
    /// second ends the run at once, counting what is there.
    fn on_signal(&mut self, now: Instant) {
        while self.signals.take().is_some() {
            match self.escalation.request() {
                Stop::Graceful => {
                    self.deadlines.stop = Some(now);
                    self.notes.push("interrupted: stopped early by a signal".to_string());
                }
                Stop::Now => self.deadlines.drain_end = Some(now),
            }
        }
    }

    /// Once a second: the live line, and the connections that waited too long.
    fn on_tick(&mut self, now: Instant) -> Result<(), Failure> {
        let since_start = now.saturating_duration_since(self.start);
        let line = self.shared.stats.live_line(now, since_start);
        self.print_live(&line)?;
        // A scan of every connection once a second: microseconds even at 10000.
        let expired: Vec<(usize, Fault)> = self
            .connections
            .iter()
            .filter_map(|(key, c)| c.check_timeouts(now, &self.shared).map(|f| (key, f)))
            .collect();
        for (key, fault) in expired {
            self.close(key, End::Failed(fault.conn, fault.what));
        }
        while self.deadlines.tick <= now {
            self.deadlines.tick += TICK;
        }
        Ok(())
    }

    /// Write the live line to stderr. A closed stderr (its reader left, as in
    /// `2>&1 | head`) ends the run quietly, as SIGPIPE ends a shell tool; any
    /// other failure (a full disk) only stops the live lines: they show
    /// progress, while the result goes to stdout.
    fn print_live(&mut self, line: &str) -> Result<(), Failure> {
        if !self.live {
            return Ok(());
        }
        match writeln!(std::io::stderr(), "{line}") {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                Err(Failure::new(EXIT_CLOSED_OUTPUT, String::new()))
            }
            Err(_) => {
                self.live = false;
                Ok(())
            }
        }
    }

    /// The deadline (or a signal): open no more, start no new message, let
    /// in-flight ones finish before they would count as lost.
    fn begin_stop(&mut self, now: Instant) {
        self.shared.stopping = true;
        self.shared.stats.drain(now);
        self.deadlines.stop = None;
        if self.deadlines.drain_end.is_none() {
            self.deadlines.drain_end = Some(now + self.shared.lost_after());
        }
        let never = u64::from(self.opener.stop());
        self.shared.stats.never_started(never);
        let mut still_connecting = 0u64;
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            let Some(conn) = self.connections.get_mut(key) else { continue };
            if !conn.is_connected() {
                still_connecting += 1;
                let asked = u64::from(conn.id) < self.wanted;
                self.close(key, End::Unfinished { asked });
                continue;
            }
            match conn.on_stop(&mut self.shared) {
                Ok(Next::Keep) => {}
                Ok(Next::Done) => self.close(key, End::Ok),
                Err(fault) => self.close(key, End::Failed(fault.conn, fault.what)),
            }
        }
        if never + still_connecting > 0 {
            self.notes.push(format!(
                "{} were not connected when the run stopped ({} not started, {} still connecting); \
                 give -d more time or raise --connect-rate",
                units::plural(never + still_connecting, "connection"),
                units::grouped(never),
                units::grouped(still_connecting)
            ));
        }
    }

    /// Take connection `key` out of the loop, count how it ended, and close it.
    fn close(&mut self, key: usize, end: End) {
        let Some(mut conn) = self.connections.try_remove(key) else { return };
        // Ignoring a failed deregister is safe: closing the socket (on drop, below)
        // removes it from epoll anyway; deregistering first is just tidy.
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if conn.role == Role::Active {
            self.active -= 1;
            // With -n the drain begins when the first connection is done with its
            // messages (with -d, `begin_stop` marks it): a clock read per close.
            let done = matches!(end, End::Ok) && !self.reopen && !self.shared.stopping;
            if done && self.shared.stats.timeline().drain_at.is_none() {
                self.shared.stats.drain(Instant::now());
            }
            if self.reopen && !self.shared.stopping && matches!(end, End::Ok) {
                self.opener.reopen();
            }
        }
        self.shared.stats.closed(conn.is_connected(), conn.in_flight(), end);
        // Dropping `conn` closes the socket. With nothing unread this sends a FIN;
        // with unread echo (an abandoned or failed connection) the kernel sends a reset.
    }

    /// The end: count what is left. Idle connections that are still up did their
    /// job; active ones still waiting either stalled (an error) or were in flight.
    fn finish(mut self) -> Outcome {
        let end = Instant::now();
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            let Some(conn) = self.connections.get(key) else { continue };
            let how = if !conn.is_connected() {
                End::Unfinished { asked: u64::from(conn.id) < self.wanted }
            } else if let Some(fault) = conn.check_timeouts(end, &self.shared) {
                End::Failed(fault.conn, fault.what)
            } else {
                End::Ok
            };
            self.close(key, how);
        }
        let from = self.opener.first_active.unwrap_or(self.start);
        let seconds = end.saturating_duration_since(from).as_secs_f64();
        self.shared.stats.end(end);
        let requests = self.escalation.requests();
        let (interrupted, forced) = (requests > 0, requests > 1);
        let tls = self.shared.tls.map(|t| t.tally);
        Outcome { stats: self.shared.stats, seconds, notes: self.notes, interrupted, forced, tls }
    }
}
