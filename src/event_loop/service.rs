//! The contract between the loop and what it serves: a [`Service`] turns each
//! admitted client into a [`Handler`], and the loop gives each handler turns.
//!
//! This is the line redis draws between `ae.c` (the event library) and its
//! clients: the loop knows sockets, tokens, timers, memory and admission, and
//! nothing about what a connection does with its bytes. The echo server
//! (`server/echo.rs`) is one service; a relay with two sockets per client is
//! another, on the same loop.
//!
//! The rules a handler keeps, so that the loop can keep its promises:
//! - **Never block.** Every socket is nonblocking; `WouldBlock` means "not
//!   now", and the next readiness event (or the loop coming back, see
//!   [`Next::Again`]) brings the handler back.
//! - **Read until the kernel says `WouldBlock`**, or ask to come back: readiness
//!   is edge-triggered, so data left unread raises no new event.
//! - **Charge every byte it keeps** to the shared [`Budget`] (and refund it),
//!   and report what it holds in [`Handler::held`]: that is how the loop bounds
//!   memory per connection *and* in total.
//! - **Errors are its own**: a failure ends this connection ([`Next::Close`]),
//!   never the loop.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::Duration;

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::idle::InFlight;
use super::memory::Budget;
use super::throttle::LineQuota;
use crate::sock::is_peer_gone;

/// Reads one connection may make in one turn of the loop before the others get
/// theirs: 16 reads of the 64 KiB buffer move 1 MiB, well under a millisecond,
/// which bounds what one fast sender adds to everyone else's latency while
/// keeping the per-turn overhead negligible for bulk transfers. Every handler
/// keeps it, and returns [`Next::Again`] when it stops for it.
pub const READS_PER_TURN: usize = 16;

/// What a server on the loop does with its clients.
///
/// With `--loops N` each loop gets its own clone, so per-loop state needs no lock.
pub trait Service: Clone + Send + 'static {
    /// One client's state.
    type Handler: Handler;

    /// How the log and the summary name what the connections did with their
    /// bytes: `echoed`, `relayed`.
    const VERB: &'static str;

    /// Descriptors the service may hold besides its connections' sockets (the
    /// relay's pipes), in the whole process: kept back from
    /// `--max-connections` when it is fitted to the open-file limit.
    const SPARE_DESCRIPTORS: u64 = 0;

    /// The log target of the loop's lines for this service, e.g.
    /// `progjar::server`: they read `INFO:server:connection from ...`, and
    /// `RUST_LOG=progjar::server=trace` selects them.
    const LOG: &'static str;

    /// Client `peer` was admitted: make its handler. `max_pending` is the bound
    /// on the bytes one connection may hold (`--max-pending`).
    fn open(
        &mut self,
        socket: TcpStream,
        peer: SocketAddr,
        max_pending: usize,
    ) -> io::Result<Self::Handler>;

    /// How long a new connection may take to be set up (a TLS handshake,
    /// a relay's connect to its target) before the loop gives it one last turn with [`Readiness::EXPIRED`];
    /// `None`, the default, when a connection is ready the moment it is
    /// accepted (the plaintext echo). See [`Handler::set_up`].
    fn setup_timeout(&self) -> Option<Duration> {
        None
    }

    /// The size of the loop's one shared buffer ([`Turn::buf`]) for reads of
    /// `read_size` bytes: `read_size` itself, unless the service needs room
    /// beside it (TLS: a whole record to decrypt, and the decrypted and
    /// encrypted echo).
    fn buffer_size(&self, read_size: usize) -> usize {
        read_size
    }
}

/// One client connection, driven by the loop's readiness events.
pub trait Handler: Send {
    /// Sockets the connection has on the loop. Socket `i` of the connection in
    /// slab slot `key` has token `key * SOURCES + i`, so an event finds its
    /// connection with one division by a constant (by 1: none at all).
    const SOURCES: usize = 1;

    /// Register the connection's sockets for the tokens of slot `key`.
    fn register(&mut self, registry: &Registry, key: usize) -> io::Result<()>;

    /// Take one turn: make the progress `ready` allows, never blocking.
    fn ready(&mut self, ready: Readiness, turn: &mut Turn<'_>) -> Next;

    /// Memory held for unsent bytes, as charged to the [`Budget`]; the loop
    /// refunds it when the connection closes.
    fn held(&self) -> usize;

    /// What is on its way between the client and us, for `--idle-timeout`
    /// and for a stalled connection's turn (`stall.rs`): asked only when a
    /// timer runs out, never per event.
    fn in_flight(&self) -> io::Result<InFlight>;

    /// The grace time is over: end the connection's output (our FIN, or TLS's
    /// `close_notify` and then the FIN) before the loop drops it.
    fn stop(&mut self);

    /// The client's address, for log lines and the per-address count.
    fn peer(&self) -> SocketAddr;

    /// Bytes this connection has delivered so far (echoed, relayed): for the
    /// close line and the summary.
    fn moved(&self) -> u64;

    /// Its counters as the recording shows them (`--record`): asked only while
    /// recording, before and after each turn, and once a second while it
    /// waits for memory (`stall.rs`: a stall is a count that does not move).
    fn wire(&self) -> Wire;

    /// Whether the connection is set up (its TLS handshake done, its relay connected): asked after
    /// each of its turns, only for a service with a [`Service::setup_timeout`],
    /// until it says yes. One not set up in time gets a turn with
    /// [`Readiness::EXPIRED`].
    fn set_up(&self) -> bool {
        true
    }
}

/// The loop's part of a turn: what a handler may use while it runs.
#[derive(Debug)]
pub struct Turn<'a> {
    /// Where the connection's sockets are registered, to change their interest.
    pub registry: &'a Registry,
    /// The connection's slab slot; its tokens are `key * SOURCES + i`.
    pub key: usize,
    /// The loop's one read buffer, shared by every connection: bytes read are
    /// handled before the next connection's turn, so an idle connection owns
    /// no buffer at all.
    pub buf: &'a mut [u8],
    /// The memory every connection's unsent bytes share (`--max-pending-total`).
    pub budget: &'a mut Budget,
    /// The loop's quota of per-connection log lines (`connection from`,
    /// `closing connection from`), which a service's own lines about one
    /// connection share ([`super::throttle::Line::Detail`]): under a flood the
    /// log stays short, and what it leaves out is counted.
    pub lines: &'a mut LineQuota,
}

impl Turn<'_> {
    /// The token of this connection's socket `source`.
    pub fn token(&self, sources: usize, source: usize) -> Token {
        Token(self.key * sources + source)
    }
}

/// A connection's counters for the recording: the bytes that crossed its
/// sockets, what it holds, and the readiness it asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wire {
    /// Bytes read from its sockets so far.
    pub read: u64,
    /// Bytes written to its sockets so far.
    pub written: u64,
    /// Bytes held now, waiting to be written.
    pub owed: usize,
    /// The interest registered now (for several sockets, their union).
    pub interest: Option<Interest>,
    /// Still setting up (a TLS handshake): the recording marks such turns.
    pub handshake: bool,
}

/// What a readiness event says about a socket, or what the loop assumes when
/// it comes back to a connection on its own ([`Readiness::AGAIN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// Which of the connection's sockets (0 for a connection with one).
    pub source: usize,
    /// Data (or the EOF) can be read.
    pub readable: bool,
    /// The send buffer has room.
    pub writable: bool,
    /// The peer shut its write side (FIN seen).
    pub read_closed: bool,
    /// Our write side is closed (the peer reset or shut down).
    pub write_closed: bool,
    /// The socket holds an error.
    pub error: bool,
    /// Not an event: the loop coming back by itself, after a turn that used
    /// all its reads or once memory is free again. No socket is named: a
    /// handler with several tries them all.
    pub again: bool,
    /// Not an event: the connection was not set up within the service's
    /// [`Service::setup_timeout`]; this is its last chance to say so.
    pub expired: bool,
}

impl Readiness {
    /// The loop coming back by itself: no event will announce data already
    /// queued, so the handler acts as if every socket were readable.
    pub const AGAIN: Readiness = Readiness {
        source: 0,
        readable: true,
        writable: false,
        read_closed: false,
        write_closed: false,
        error: false,
        again: true,
        expired: false,
    };

    /// The connection's setup took longer than [`Service::setup_timeout`].
    pub const EXPIRED: Readiness = Readiness {
        source: 0,
        readable: false,
        writable: false,
        read_closed: false,
        write_closed: false,
        error: false,
        again: false,
        expired: true,
    };

    /// What a mio event says about socket `source`.
    pub fn of(event: &Event, source: usize) -> Readiness {
        Readiness {
            source,
            readable: event.is_readable(),
            writable: event.is_writable(),
            read_closed: event.is_read_closed(),
            write_closed: event.is_write_closed(),
            error: event.is_error(),
            again: false,
            expired: false,
        }
    }
}

/// What the loop should do with a connection after its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing: its next readiness event will bring it back.
    Wait,
    /// It made all the reads a turn allows and more is probably queued; no new
    /// event will say so, so come back to it after the others had their turn.
    Again,
    /// It is finished: drop it.
    Close(Closed),
}

/// Why a connection ended; logged and counted by the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The client shut its side and got every byte back.
    PeerClosed,
    /// The client reset the connection or vanished (ECONNRESET, EPIPE).
    Reset,
    /// Some other socket error.
    Error(ErrorKind),
    /// Silent for longer than `--idle-timeout`.
    IdleTimeout,
    /// The server is shutting down and the grace time is over.
    Shutdown,
    /// Its TLS handshake did not finish within `--handshake-timeout`.
    HandshakeTimeout,
    /// Its TLS failed (not TLS at all, a malformed hello, no version or cipher
    /// suite in common, a record that does not decrypt): why, in plain words.
    Tls(&'static str),
}

impl Closed {
    /// Words for the log line.
    pub fn describe(self) -> String {
        match self {
            Closed::PeerClosed => "peer closed".into(),
            Closed::Reset => "reset by peer".into(),
            Closed::Error(kind) => format!("error: {kind}"),
            Closed::IdleTimeout => "idle timeout".into(),
            Closed::Shutdown => "server shutting down".into(),
            Closed::HandshakeTimeout => {
                "its TLS handshake did not finish within --handshake-timeout".into()
            }
            Closed::Tls(why) => why.into(),
        }
    }

    /// The reason a socket error gives: the peer gone, or another error.
    pub fn from_error(e: &io::Error) -> Closed {
        if is_peer_gone(e) {
            Closed::Reset
        } else {
            Closed::Error(e.kind())
        }
    }
}

/// A slot of the loop's slab: the handler, and what the loop itself keeps
/// about it.
#[derive(Debug)]
pub(super) struct Entry<H> {
    pub handler: H,
    /// When it was accepted, for the close line.
    pub opened: std::time::Instant,
    /// While on the loop's "again" list, so that it is never listed twice.
    pub queued_again: bool,
}
