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

use std::fs::File;
use std::io::{self, ErrorKind, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use log::{info, trace, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::access::{Admission, Cidr, Refusal, Refusals};
use crate::cli::{Failure, EXIT_FAILURE, EXIT_INTERRUPTED};
use crate::connection::{Closed, Connection, Next, Readiness};
use crate::idle::IdleList;
use crate::limits;
use crate::memory::{self, Budget};
use crate::signals::{self, SignalPipe};
use crate::throttle::{more, plural, Line, LineBudget, Throttle};

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

/// Descriptors kept back from `--max-connections`: stdin, stdout, stderr, the
/// epoll instance, the listener, the signal pipe's two ends and the reserve
/// descriptor are 8; the rest is slack for whatever the logger or the C
/// library may open.
const RESERVED_FDS: u64 = 16;

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
    /// limit ([`memory::default_total`]). The real bound is this plus one
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
    /// `--record FILE`: what the loop does at each wake-up (record.rs).
    pub record: Option<crate::record::Options>,
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
            record: None, // [record hook]
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
    /// `--record`: nothing when off (record.rs). [record hook]
    record: crate::record::Recording,
}

/// Run `progjar server`: bind, print `listening on ADDR:PORT`, serve until a signal.
pub fn run(config: Config) -> Result<(), Failure> {
    let wanted = SocketAddr::new(config.bind, config.port);
    let mut server = Server::bind(config).map_err(|e| bind_failure(&e, wanted))?;
    let c = &server.config; // [record hook] opened before `listening on`: a bad path stops here
    server.record = crate::record::Recording::start(c.record.as_ref(), c.read_size, c.max_pending)?;
    server.handle_signals().map_err(|e| failure("cannot install signal handlers", &e))?;
    let addr = server.local_addr().map_err(|e| failure("cannot read the bound address", &e))?;
    info!("starting up on {addr}");
    // The one line scripts and tests read; flushed so a pipe sees it at once.
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "listening on {addr}").and_then(|()| stdout.flush());
    drop(stdout);
    let summary = server.run().map_err(|e| failure("event loop failed", &e))?;
    if summary.forced {
        return Err(Failure::new(EXIT_INTERRUPTED, "stopped at once by a second signal"));
    }
    Ok(())
}

fn failure(what: &str, e: &io::Error) -> Failure {
    Failure::new(EXIT_FAILURE, format!("{what}: {e}"))
}

/// A bind error in words a student can act on.
fn bind_failure(e: &io::Error, addr: SocketAddr) -> Failure {
    let port = addr.port();
    let message = match e.kind() {
        ErrorKind::AddrInUse => format!(
            "cannot listen on {addr}: port {port} is already in use \
             (another server running? choose another with --port)"
        ),
        ErrorKind::PermissionDenied => format!(
            "cannot listen on {addr}: ports below 1024 need root or CAP_NET_BIND_SERVICE \
             (use e.g. --port 10000)"
        ),
        ErrorKind::AddrNotAvailable => format!(
            "cannot listen on {addr}: {} is not an address of this machine \
             (see `progjar info`, or use --bind 0.0.0.0)",
            addr.ip()
        ),
        ErrorKind::InvalidInput if is_ipv6_link_local(addr.ip()) => format!(
            "cannot listen on {addr}: a link-local address needs an interface (scope) that \
             --bind cannot give; use :: or a global address"
        ),
        _ => format!("cannot listen on {addr}: {e}"),
    };
    Failure::new(EXIT_FAILURE, message)
}

/// Is `ip` in fe80::/10, where an address means nothing without an interface?
fn is_ipv6_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// Create the listening socket with socket2, because mio's own `bind` fixes
/// the backlog at 128 and sets no options before `bind`.
fn bind_listener(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Like the course's server: restart at once even while old connections
    // linger in TIME_WAIT on this port.
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // `::` serves IPv4 clients too (as ::ffff:a.b.c.d), whatever the
        // system's net.ipv6.bindv6only says.
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(TcpListener::from_std(socket.into()))
}

impl Server {
    /// Bind the listener and prepare the loop; nothing is accepted until [`Server::run`].
    pub fn bind(config: Config) -> io::Result<Server> {
        let mut listener =
            bind_listener(SocketAddr::new(config.bind, config.port), config.backlog)?;
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let max_connections = fit_to_descriptors(config.max_connections);
        let (total, why) = match config.max_pending_total {
            Some(bytes) => (bytes, "--max-pending-total".to_string()),
            None => memory::default_total(),
        };
        info!(
            "unsent bytes of all clients together: at most {} ({why})",
            memory::mib(total as u64)
        );
        // The read buffer can be large (--read-size): fail with words, not an abort.
        let mut buf = Vec::new();
        let read_size = config.read_size.clamp(1, MAX_READ_SIZE);
        buf.try_reserve_exact(read_size).map_err(|_| {
            io::Error::new(ErrorKind::OutOfMemory, "no memory for the read buffer (--read-size)")
        })?;
        buf.resize(read_size, 0);
        Ok(Server {
            poll,
            listener: Some(listener),
            signals: None,
            // Everything indexed by connection is sized for `max_connections`
            // here, so that serving never allocates for it (an allocation that
            // fails aborts). This costs address space; pages are touched (and
            // counted in RSS) only as connections arrive.
            connections: Slab::with_capacity(max_connections),
            buf,
            idle: config.idle_timeout.map(|t| IdleList::new(t, max_connections)),
            max_connections,
            admission: Admission::new(
                config.allow.clone(),
                config.max_per_ip,
                config.per_ip_prefix6,
            ),
            reserve: File::open("/dev/null").ok(),
            retry_accept_at: None,
            again: Vec::with_capacity(max_connections),
            again_now: Vec::with_capacity(max_connections),
            budget: Budget::new(total, max_connections),
            shutdown_at: None,
            summary: Summary::default(),
            warnings: Warnings::default(),
            record: Default::default(), // [record hook]
            config,
        })
    }

    /// The address the listener is bound to (with the real port when 0 was asked).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.listener {
            Some(listener) => listener.local_addr(),
            None => Err(ErrorKind::NotConnected.into()),
        }
    }

    /// Turn SIGINT, SIGTERM and SIGHUP into events of this loop: the first
    /// begins a graceful shutdown, the second stops at once. SIGHUP (the
    /// terminal that started us closed) is graceful too: the clients finish.
    pub fn handle_signals(&mut self) -> io::Result<()> {
        let mut signals = SignalPipe::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP])?;
        self.poll.registry().register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Serve until a signal and the grace time end it; return what was done.
    pub fn run(mut self) -> io::Result<Summary> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        info!("waiting for a connection (at most {} at once)", self.max_connections);
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
            // [record hook] the time and events of this wake-up
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
        let before = self.record.before(conn); // [record hook]
        let next = conn.ready(ready, self.poll.registry(), token, &mut self.buf, &mut self.budget);
        self.record.turn(token, ready, before, conn); // [record hook] bytes, owed, interest
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

    /// Accept every connection waiting in the backlog.
    ///
    /// Edge-triggered: the listener's event fires once for any number of
    /// queued connections, so we accept until `WouldBlock`. The backlog's size
    /// bounds how long one call can take.
    fn accept(&mut self) {
        while let Some(listener) = &self.listener {
            match listener.accept() {
                Ok((socket, peer)) => self.admit(socket, peer),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    // The backlog is empty: the next client brings a new event.
                    self.retry_accept_at = None;
                    return;
                }
                // A signal interrupted accept before it took a connection: retry.
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if out_of_descriptors(&e) => return self.shed_backlog(),
                // That one connection died in the backlog (reset before we
                // took it): nothing to serve, keep accepting the others.
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // Something that may pass (e.g. ENOBUFS): try again soon
                    // instead of spinning, and meanwhile serve who we have.
                    if let Some(n) = self.warnings.accept.hit() {
                        warn!("accept failed: {e}; retrying in {ACCEPT_RETRY:?}{}", more(n));
                    }
                    self.retry_accept_at = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    /// Out of descriptors with clients still waiting in the backlog.
    ///
    /// Left there, they would wait for an event that never comes (edge
    /// triggering reports the backlog once). So give back the reserve
    /// descriptor, accept one client and close it at once (it sees a clean
    /// EOF: "no room, try later"), take the reserve again, until the backlog
    /// is empty. Clients that come after a connection has closed are served.
    fn shed_backlog(&mut self) {
        let mut shed = 0u64;
        loop {
            self.reserve = None; // closes the reserve descriptor
            let Some(listener) = &self.listener else { break };
            match listener.accept() {
                Ok((socket, _)) => {
                    drop(socket);
                    shed += 1;
                }
                // The backlog is empty: done.
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // Interrupted by a signal: try that one again.
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    // Even the reserve did not help (the whole system is out of
                    // descriptors): retry later rather than spin.
                    self.retry_accept_at = Some(Instant::now() + ACCEPT_RETRY);
                    break;
                }
            }
            self.reserve = File::open("/dev/null").ok();
            if self.reserve.is_none() {
                self.retry_accept_at = Some(Instant::now() + ACCEPT_RETRY);
                break;
            }
        }
        if self.reserve.is_none() {
            self.reserve = File::open("/dev/null").ok();
        }
        if shed == 0 && self.retry_accept_at.is_none() {
            // accept() reports EMFILE before it looks at the backlog, so the
            // server's own "anyone else?" accept after taking the last
            // descriptor lands here with nobody waiting: nothing to report.
            return;
        }
        if let Some(n) = self.summary.refused.count(&Refusal::NoDescriptor, shed) {
            warn!(
                "out of file descriptors with {} open: closed {}{}",
                plural(self.connections.len() as u64, "connection"),
                plural(shed, "new connection"),
                more(n)
            );
        }
    }

    /// Decide about a freshly accepted client: serve it, or close it at once.
    fn admit(&mut self, socket: TcpStream, peer: SocketAddr) {
        let open = self.connections.len();
        if let Err(refusal) = self.admission.check(peer.ip(), open, self.max_connections) {
            if let Some(n) = self.summary.refused.count(&refusal, 1) {
                warn!("refused {peer}: {refusal}{}", more(n));
            }
            return; // dropping the socket closes it
        }
        // Nagle's algorithm would hold back a small echo while an earlier one
        // is unacknowledged; an echo server answers at once.
        let _ = socket.set_nodelay(true);
        // Urgent (MSG_OOB) bytes stay in the stream, so they are echoed in place.
        let _ = socket2::SockRef::from(&socket).set_out_of_band_inline(true);
        let entry = self.connections.vacant_entry();
        let key = entry.key();
        let mut conn = Connection::new(socket, peer, self.config.max_pending);
        if let Err(e) = conn.register(self.poll.registry(), Token(key)) {
            warn!("cannot register {peer}: {e}");
            self.forget_ip(peer);
            return;
        }
        entry.insert(conn);
        self.record.open(key); // [record hook]

        // The one clock read per accepted connection, shared by both users.
        let now = Instant::now();
        if let Some(idle) = &mut self.idle {
            idle.touch(key, now);
        }
        self.summary.served += 1;
        if self.connection_line(now, Line::Opened) {
            info!("connection from {peer} ({} open)", self.connections.len());
        }
    }

    fn forget_ip(&mut self, peer: SocketAddr) {
        self.admission.left(peer.ip());
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
            info!("{quiet} ({} open)", self.connections.len());
        }
    }

    /// Drop a connection and log why.
    fn close(&mut self, key: usize, why: Closed) {
        let Some(mut conn) = self.connections.try_remove(key) else { return };
        self.record.close(key); // [record hook]
        self.budget.refund(conn.held());
        conn.deregister(self.poll.registry());
        if let Some(idle) = &mut self.idle {
            idle.remove(key);
        }
        self.forget_ip(conn.peer);
        self.summary.echoed += conn.echoed;
        let now = Instant::now();
        if self.connection_line(now, Line::Closed) {
            info!(
                "closing connection from {} ({}): {} bytes echoed in {:.3}s ({} open)",
                conn.peer,
                why.describe(),
                conn.echoed,
                now.saturating_duration_since(conn.opened).as_secs_f64(),
                self.connections.len()
            );
        }
    }

    /// Take every signal received. Returns true when the server must stop at once.
    fn on_signal(&mut self) -> bool {
        // Each signal is one byte, so two sent back to back are two here.
        while let Some(signal) = self.signals.as_mut().and_then(SignalPipe::take) {
            let name = signals::name(signal);
            if self.shutdown_at.is_some() {
                warn!("{name} again: stopping now");
                return true;
            }
            // Stop accepting: dropping the listener closes it, so new clients are
            // refused by the kernel instead of waiting in a backlog nobody reads.
            if let Some(mut listener) = self.listener.take() {
                let _ = self.poll.registry().deregister(&mut listener);
            }
            self.shutdown_at = Some(Instant::now() + self.config.grace);
            info!(
                "{name}: shutting down: no new connections; waiting up to {:.1}s for {} open",
                self.config.grace.as_secs_f64(),
                self.connections.len()
            );
        }
        false
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

    /// Whether any timer is running, i.e. whether a wakeup must read the clock.
    fn needs_clock(&self) -> bool {
        self.idle.is_some()
            || self.retry_accept_at.is_some()
            || self.shutdown_at.is_some()
            || self.warnings.lines.due().is_some()
    }

    /// The earliest timer, which bounds how long `poll` may sleep.
    fn next_deadline(&self) -> Option<Instant> {
        let idle = self.idle.as_ref().and_then(IdleList::next_deadline);
        let quiet = self.warnings.lines.due();
        [idle, self.retry_accept_at, self.shutdown_at, quiet].into_iter().flatten().min()
    }

    /// Run the timers that are due; idle timeouts only if `expire_idle`.
    fn timers(&mut self, now: Instant, expire_idle: bool) {
        self.log_quiet_lines(now);
        while let Some(key) = self.idle.as_ref().and_then(|idle| idle.expired(now)) {
            if !expire_idle {
                break;
            }
            // Ask the kernel whether bytes are on their way before calling the
            // client idle (idle.rs); a socket that cannot say is closed.
            let seen = self.connections.get(key).map(Connection::in_flight);
            if let (Some(idle), Some(Ok(seen))) = (&mut self.idle, &seen) {
                if !idle.expire(key, now, *seen) {
                    continue;
                }
            }
            if seen.is_none() {
                // Not a connection (cannot happen: close unlinks it); never spin on it.
                if let Some(idle) = &mut self.idle {
                    idle.remove(key);
                }
                continue;
            }
            self.summary.idle_closed += 1;
            self.close(key, Closed::IdleTimeout);
        }
        if self.retry_accept_at.is_some_and(|at| at <= now) {
            self.retry_accept_at = None;
            self.accept();
        }
        if self.shutdown_at.is_some_and(|at| at <= now) {
            let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
            for key in keys {
                if let Some(conn) = self.connections.get_mut(key) {
                    conn.shutdown_write();
                }
                self.close(key, Closed::Shutdown);
            }
        }
    }

    /// Log the one-line summary and hand it back.
    fn finish(mut self) -> Summary {
        // Connections still open (a forced stop) count what they echoed too.
        self.summary.echoed += self.connections.iter().map(|(_, c)| c.echoed).sum::<u64>();
        if let Some(quiet) = self.warnings.lines.finish() {
            info!("{quiet} ({} open)", self.connections.len());
        }
        let s = &self.summary;
        let idle = if s.idle_closed > 0 {
            format!("; {} closed idle", s.idle_closed)
        } else {
            String::new()
        };
        info!(
            "served {}, echoed {}{}{idle}",
            plural(s.served, "connection"),
            plural(s.echoed, "byte"),
            s.refused.summary()
        );
        self.summary
    }
}

/// Did `accept` fail because this process (EMFILE) or the system (ENFILE) has
/// no descriptor left?
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Raise the open-file limit and keep `wanted` connections below it.
fn fit_to_descriptors(wanted: usize) -> usize {
    match limits::raise_nofile() {
        Ok(lim) => {
            info!(
                "open-file limit: soft {} (was {}), hard {}",
                lim.soft, lim.soft_before, lim.hard
            );
            let room = usize::try_from(lim.soft.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
            if wanted > room {
                warn!("serving at most {room} connections: the open-file limit is {}", lim.soft);
            }
            wanted.min(room).max(1)
        }
        Err(e) => {
            warn!("cannot read the open-file limit: {e}");
            wanted
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
