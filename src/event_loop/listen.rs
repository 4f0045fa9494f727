//! Binding: the listening sockets, the open-file limit, and how the totals
//! of the command line are split between loops.
//!
//! With `--loops N` every loop has a listening socket of its own on the same
//! address, each with `SO_REUSEPORT`: the kernel hashes each new connection
//! (its addresses and ports) to one of them, so the loops never share an
//! accept queue or take a lock to accept. Linux lets a socket join such a
//! group only if it set `SO_REUSEPORT` before `bind` and belongs to the same
//! user, which also means a second server started by the same user on the
//! same port would join the group and quietly take some of the clients. So
//! [`probe`] first binds the address alone, without the option: it fails with
//! "already in use" exactly as one loop would, and with port 0 it picks the
//! port all the loops then bind.

use std::fs::File;
use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr};

use log::{info, warn};
use mio::net::TcpListener;
use mio::{Interest, Poll};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};

use super::admission::Admission;
use super::idle::IdleList;
use super::memory;
use super::{Budget, Config, EventLoop, Handler, Service, Stalls, Stopper, Summary, Warnings};
use super::{LISTENER, MAX_READ_SIZE, SIGNALS, WAKER};
use crate::cli::{Failure, EXIT_FAILURE};
use crate::limits;
use crate::recording::{Options, Recording};
use crate::signals::{Escalation, SignalPipe};
use crate::units;

/// Descriptors kept back from `--max-connections`: stdin, stdout, stderr, the
/// epoll instance, the listener, the signal pipe's two ends, the waker and the
/// reserve descriptor are 9; the rest is slack for whatever the logger, the
/// recording or the C library may open.
const RESERVED_FDS: u64 = 16;

/// Descriptors each loop after the first adds: its epoll instance, listener,
/// signal pipe's two ends, waker and reserve.
const FDS_PER_LOOP: u64 = 6;

/// The signals a loop that handles signals turns into stop requests: SIGINT
/// (Ctrl-C), SIGTERM, and SIGHUP (the terminal that started us closed), all
/// graceful at first, so the clients finish.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// How a group of loops is started: what every loop of it gets.
pub(super) struct Start<'a, S> {
    pub service: S,
    pub stopper: &'a Stopper,
    /// Turn SIGINT, SIGTERM and SIGHUP into stop requests (the binary does;
    /// a server embedded in a test process does not).
    pub signals: bool,
}

/// One loop's part of what the command line gives all loops together.
struct Share {
    max_connections: usize,
    pending_total: usize,
    admission: Admission,
    /// `--record`, started on the file this loop writes (or off).
    record: Recording,
}

/// Loop `i`'s part of `total` split between `n` loops: the parts add up to
/// `total`, but each is at least 1.
fn part(total: usize, n: usize, i: usize) -> usize {
    (total / n + usize::from(i < total % n)).max(1)
}

/// Bind `n` loops on the same address (see the top of this file), each with
/// everything it needs to serve: recording started, the stopper watched,
/// signals turned into stop requests if asked. Nothing is accepted until
/// [`EventLoop::run`].
pub(super) fn bind_loops<S: Service>(
    config: Config,
    n: usize,
    start: Start<'_, S>,
) -> Result<Vec<EventLoop<S>>, Failure> {
    let wanted = SocketAddr::new(config.bind, config.port);
    let listeners =
        bind_listeners(wanted, config.backlog, n).map_err(|e| bind_failure(&e, wanted))?;
    let max_connections = fit_to_descriptors::<S>(config.max_connections, n);
    let (total, why) = match config.max_pending_total {
        Some(bytes) => (bytes, "--max-pending-total".to_string()),
        None => memory::default_total(),
    };
    info!(
        target: S::LOG,
        "unsent bytes of all clients together: at most {} ({why})",
        units::bytes(total as u64)
    );
    let admission = Admission::new(config.allow.clone(), config.max_per_ip, config.per_ip_prefix6);
    let mut loops = Vec::with_capacity(n);
    for (i, listener) in listeners.into_iter().enumerate() {
        // Opened before `listening on`: a path that cannot be written stops here.
        let options = config.record.as_ref().map(|o| per_loop(o, i + 1, n));
        let read_size = config.read_size.clamp(1, MAX_READ_SIZE);
        let sources = S::Handler::SOURCES;
        let record = Recording::start(options.as_ref(), read_size, config.max_pending, sources)?;
        let share = Share {
            max_connections: part(max_connections, n, i),
            pending_total: part(total, n, i),
            admission: admission.clone(),
            record,
        };
        let mut event_loop = EventLoop::new(config.clone(), listener, share, start.service.clone())
            .map_err(|e| failure("cannot set up the event loop", &e))?;
        event_loop.watch(start.stopper, start.signals)?;
        loops.push(event_loop);
    }
    Ok(loops)
}

/// The listening sockets of `n` loops on `addr`: one plain socket for one
/// loop; for several, a probe first and then `SO_REUSEPORT` sockets.
fn bind_listeners(addr: SocketAddr, backlog: u32, n: usize) -> io::Result<Vec<TcpListener>> {
    let addr = if n > 1 { probe(addr)? } else { addr };
    (0..n).map(|_| bind_listener(addr, backlog, n > 1)).collect()
}

/// Loop `k` of `n` records into `FILE.k` when there are several: one file per
/// thread, each a recording of one loop.
fn per_loop(options: &Options, k: usize, n: usize) -> Options {
    let mut options = options.clone();
    if n > 1 {
        let mut path = options.path.into_os_string();
        path.push(format!(".{k}"));
        options.path = path.into();
    }
    options
}

impl<S: Service> EventLoop<S> {
    fn new(
        config: Config,
        mut listener: TcpListener,
        share: Share,
        service: S,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let max_connections = share.max_connections;
        // The read buffer can be large (--read-size): fail with words, not an abort.
        let mut buf = Vec::new();
        let read_size = config.read_size.clamp(1, MAX_READ_SIZE);
        let size = service.buffer_size(read_size);
        buf.try_reserve_exact(size).map_err(|_| {
            io::Error::new(ErrorKind::OutOfMemory, "no memory for the read buffer (--read-size)")
        })?;
        buf.resize(size, 0);
        let setup = service.setup_timeout().map(|t| IdleList::new(t, max_connections));
        Ok(EventLoop {
            poll,
            service,
            listener: Some(listener),
            signals: None,
            stopper: Stopper::new(),
            escalation: Escalation::default(),
            // Everything indexed by connection is sized for `max_connections`
            // here, so that serving never allocates for it (an allocation that
            // fails aborts). This costs address space; pages are touched (and
            // counted in RSS) only as connections arrive.
            connections: Slab::with_capacity(max_connections),
            buf,
            idle: config.idle_timeout.map(|t| IdleList::new(t, max_connections)),
            setup,
            max_connections,
            admission: share.admission,
            reserve: File::open("/dev/null").ok(),
            retry_accept_at: None,
            again: Vec::with_capacity(max_connections),
            again_now: Vec::with_capacity(max_connections),
            budget: Budget::new(share.pending_total, max_connections),
            stalls: Stalls::new(max_connections),
            shutdown_at: None,
            summary: Summary { verb: S::VERB, ..Summary::default() },
            warnings: Warnings::default(),
            config,
            record: share.record,
        })
    }

    /// Wake for `stopper`'s requests, and for SIGINT, SIGTERM and SIGHUP if
    /// `signals`: each is a stop request, graceful first (`signals.rs`).
    fn watch(&mut self, stopper: &Stopper, signals: bool) -> Result<(), Failure> {
        let registry = self.poll.registry();
        stopper.watch(registry, WAKER).map_err(|e| failure("cannot make the loop's waker", &e))?;
        self.stopper = stopper.clone();
        if signals {
            let installed = SignalPipe::new(&STOP_SIGNALS).and_then(|mut pipe| {
                registry.register(&mut pipe, SIGNALS, Interest::READABLE)?;
                Ok(pipe)
            });
            let pipe = installed.map_err(|e| failure("cannot install signal handlers", &e))?;
            self.signals = Some(pipe);
        }
        Ok(())
    }

    /// The address the listener is bound to (with the real port when 0 was asked).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.listener {
            Some(listener) => listener.local_addr(),
            None => Err(ErrorKind::NotConnected.into()),
        }
    }
}

/// A bound socket with the options every listener needs, set before `bind`.
fn bound_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Like the course's server: restart at once even while old connections
    // linger in TIME_WAIT on this port.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // `::` serves IPv4 clients too (as ::ffff:a.b.c.d), whatever the
        // system's net.ipv6.bindv6only says.
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Create a listening socket with socket2, because mio's own `bind` fixes
/// the backlog at 128 and sets no options before `bind`.
fn bind_listener(addr: SocketAddr, backlog: u32, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = bound_socket(addr, reuse_port)?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Is `addr` free for a group of loops? Binds it alone (closed again at
/// once) and returns it with the port the kernel picked if 0 was asked.
fn probe(addr: SocketAddr) -> io::Result<SocketAddr> {
    let socket = bound_socket(addr, false)?;
    let bound = socket.local_addr()?.as_socket().ok_or(ErrorKind::InvalidInput)?;
    Ok(SocketAddr::new(addr.ip(), bound.port()))
}

/// Raise the open-file limit and keep `wanted` connections (of all `loops`
/// together, each with [`Handler::SOURCES`] sockets) below it.
fn fit_to_descriptors<S: Service>(wanted: usize, loops: usize) -> usize {
    match limits::raise_nofile() {
        Ok(lim) => {
            info!(
                target: S::LOG,
                "open-file limit: soft {} (was {}), hard {}",
                units::grouped(lim.soft),
                units::grouped(lim.soft_before),
                units::grouped(lim.hard)
            );
            let reserved = RESERVED_FDS + FDS_PER_LOOP * (loops as u64 - 1) + S::SPARE_DESCRIPTORS;
            // Each connection takes a descriptor per socket (a relay's two).
            let room = lim.soft.saturating_sub(reserved) / S::Handler::SOURCES.max(1) as u64;
            let room = usize::try_from(room).unwrap_or(usize::MAX);
            if wanted > room {
                warn!(
                    target: S::LOG,
                    "serving at most {}: the open-file limit is {}",
                    units::plural(room as u64, "connection"),
                    units::grouped(lim.soft)
                );
            }
            wanted.min(room).max(1)
        }
        Err(e) => {
            warn!(target: S::LOG, "cannot read the open-file limit: {e}");
            wanted
        }
    }
}

/// A failure of the server's setup, in one line.
pub(super) fn failure(what: &str, e: &io::Error) -> Failure {
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
