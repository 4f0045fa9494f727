//! One leg of a relay: a socket, the bytes it has not taken yet, and how far
//! each direction of it has got (its peer's FIN read, our FIN sent).
//!
//! A relayed client has two legs, the client's and the real server's, and the
//! relay (`relay.rs`) moves bytes from one leg's reads into the other leg's
//! writes. Everything that is about one socket is here, so that a leg can be
//! something else that reads and writes bytes without the relay changing:
//! intercepting, each leg is a TLS session (`secure.rs`), and a read of it
//! brings plaintext, a write takes plaintext.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use log::trace;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::pipe::{self, Pipe};
use super::secure::{Broke, Io, Received, Scratch, Secure};
use super::unsent::Unsent;
use crate::event_loop::{Budget, InFlight};
use crate::sock;

/// Which leg: the client's, or the real server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client that connected to the proxy (socket 0 of its connection).
    Client,
    /// The server the proxy connected to for it (socket 1).
    Server,
}

impl Side {
    /// Both, in socket order.
    pub const BOTH: [Side; 2] = [Side::Client, Side::Server];

    /// The socket's number within its connection (its token's remainder).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The side of socket number `source`.
    pub fn of(source: usize) -> Side {
        if source == Side::Server.index() {
            Side::Server
        } else {
            Side::Client
        }
    }

    /// The other leg: where this leg's bytes go.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

impl fmt::Display for Side {
    /// The course's words: `client` and `realserver`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Server => "realserver",
        })
    }
}

/// One socket of a relayed connection and the state of both its directions.
#[derive(Debug)]
pub struct Leg {
    socket: TcpStream,
    /// Bytes read from the other leg that this socket has not taken yet.
    unsent: Unsent,
    /// Once the direction into this leg is busy: the pipe its bytes go through
    /// by `splice`, kept until that direction ends. Its bytes are owed like
    /// `unsent`'s, and always come after them.
    pipe: Option<Pipe>,
    /// The pipe held bytes this socket would not take, so the other leg was
    /// not read to its end: read it again once the pipe is empty.
    pub blocked: bool,
    /// What we asked the registry for last; `None` before registration.
    interest: Option<Interest>,
    /// Its peer shut its write side: a read returned 0 (the FIN).
    pub eof: bool,
    /// We shut our write side (`shutdown(SHUT_WR)`): the other leg's FIN,
    /// passed on after its last byte.
    pub shut: bool,
    /// `unsent` could not grow (the allocator said no): the other leg is
    /// not read until some of it has been sent.
    pub starved: bool,
    /// Bytes read from this socket so far.
    pub read: u64,
    /// Intercepting: the leg's TLS (boxed: a plain relay's legs pay one pointer).
    tls: Option<Box<Secure>>,
}

impl Leg {
    /// A leg for `socket`, registered by [`Leg::register`] next.
    pub fn new(socket: TcpStream) -> Leg {
        Leg {
            socket,
            unsent: Unsent::default(),
            pipe: None,
            blocked: false,
            interest: None,
            eof: false,
            shut: false,
            starved: false,
            read: 0,
            tls: None,
        }
    }

    /// A leg for `socket` whose bytes go through `tls`.
    pub fn secure(socket: TcpStream, tls: Secure) -> Leg {
        Leg { tls: Some(Box::new(tls)), ..Leg::new(socket) }
    }

    /// Its TLS, if it speaks TLS.
    pub fn tls(&self) -> Option<&Secure> {
        self.tls.as_deref()
    }

    /// True while its TLS handshake is not done (never on a plain leg).
    pub fn handshaking(&self) -> bool {
        self.tls().is_some_and(Secure::handshaking)
    }

    /// Bytes of data taken from this leg so far: the plaintext of a TLS leg.
    pub fn taken(&self) -> u64 {
        self.tls().map_or(self.read, |t| t.taken)
    }

    /// Bytes of the other leg's data known to have left through this socket,
    /// given what the other leg took (`from`).
    pub fn delivered(&self, from: u64) -> u64 {
        self.tls().map_or(from.saturating_sub(self.owed() as u64), |t| t.delivered)
    }

    /// After a turn: once nothing is owed, everything given so far has left.
    pub fn note_delivered(&mut self) {
        if self.owed() == 0 {
            if let Some(t) = &mut self.tls {
                t.delivered = t.given;
            }
        }
    }

    /// The TLS session's way out through this leg's socket.
    fn io<'a>(
        socket: &'a mut TcpStream,
        unsent: &'a mut Unsent,
        max_pending: usize,
        budget: &'a mut Budget,
    ) -> Io<'a> {
        Io { socket, unsent, max_pending, budget, sent: 0 }
    }

    /// Read once: the bytes themselves, or on a TLS leg the plaintext of the
    /// records they complete (answering the handshake on this socket).
    pub fn receive(
        &mut self,
        scratch: &mut Scratch<'_>,
        max_pending: usize,
        budget: &mut Budget,
    ) -> Result<Received, Broke> {
        let read = self.read;
        let Leg { socket, unsent, tls, .. } = self;
        match tls {
            None => match socket.read(scratch.input)? {
                0 => Ok(Received::END),
                n => Ok(Received::plain(n, scratch.input.len())),
            },
            Some(tls) => tls.receive(Leg::io(socket, unsent, max_pending, budget), scratch, read),
        }
    }

    /// Take `data` from the other leg: write it now, after what already
    /// waits (encrypted first, on a TLS leg); keep what the socket will not take.
    pub fn deliver(
        &mut self,
        data: &[u8],
        room: &mut [u8],
        max_pending: usize,
        budget: &mut Budget,
    ) -> Result<(), Broke> {
        let Leg { socket, unsent, tls, .. } = self;
        match tls {
            None => {
                send_into(socket, unsent, data, max_pending, budget).map(|_| ()).map_err(Broke::Io)
            }
            Some(tls) => tls.deliver(data, Leg::io(socket, unsent, max_pending, budget), room),
        }
    }

    /// Begin its TLS handshake (the realserver's leg: our hello).
    pub fn start_tls(
        &mut self,
        room: &mut [u8],
        max_pending: usize,
        budget: &mut Budget,
    ) -> Result<(), Broke> {
        let Leg { socket, unsent, tls, .. } = self;
        match tls {
            None => Ok(()),
            Some(tls) => tls.start(Leg::io(socket, unsent, max_pending, budget), room),
        }
    }

    /// Pass the other leg's end on: on a TLS leg `close_notify` first if the
    /// other leg's peer ended with one (`clean`), then (once it is written)
    /// `shutdown(SHUT_WR)`.
    pub fn end_output(
        &mut self,
        clean: bool,
        max_pending: usize,
        budget: &mut Budget,
    ) -> Result<(), Broke> {
        let Leg { socket, unsent, tls, .. } = self;
        if let Some(tls) = tls.as_deref_mut().filter(|_| clean) {
            tls.close(Leg::io(socket, unsent, max_pending, budget))?;
        }
        if self.owed() > 0 {
            return Ok(()); // the close_notify waits for the socket: here again once it is sent
        }
        Ok(self.shut_down()?)
    }

    /// The proxy stops: `close_notify` if nothing is owed, then the FIN.
    pub fn stop(&mut self) {
        if self.owed() == 0 {
            if let Some(tls) = &mut self.tls {
                tls.close_now(&mut self.socket);
            }
        }
        // The peer may be gone already: nothing to do about it then.
        let _ = self.socket.shutdown(Shutdown::Write);
    }

    /// The socket, to read from it, ask it about its connect, or set options.
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.socket
    }

    /// The socket, to splice from it.
    pub fn stream(&self) -> &TcpStream {
        &self.socket
    }

    /// Bytes waiting for this leg: for its socket, and on a TLS leg the
    /// plaintext waiting for its handshake.
    pub fn owed(&self) -> usize {
        self.to_write() + self.tls().map_or(0, Secure::waiting)
    }

    /// Bytes waiting for its socket (it wants WRITABLE while there are any).
    pub fn to_write(&self) -> usize {
        self.unsent.len() + self.pipe.as_ref().map_or(0, |p| p.len)
    }

    /// Memory held for them, as charged to the budget (a pipe's kernel
    /// memory counts, whatever it holds; so does a TLS session's carry).
    pub fn held(&self) -> usize {
        self.unsent.capacity()
            + self.pipe.as_ref().map_or(0, |_| pipe::CAPACITY)
            + self.tls().map_or(0, Secure::held)
    }

    /// Whether the other leg's bytes come by `splice` now.
    pub fn piped(&self) -> bool {
        self.pipe.is_some()
    }

    /// Begin a burst: a pipe for the other leg's bytes, charged to the
    /// budget, kept until that direction ends. False when there is no room
    /// for it or no pipe to be had (see `pipe.rs`): the bytes go by
    /// `read`/`write`.
    pub fn open_pipe(&mut self, budget: &mut Budget) -> bool {
        if self.pipe.is_some() {
            return true;
        }
        if budget.room() < pipe::CAPACITY || !self.unsent.is_empty() {
            return false;
        }
        match Pipe::new() {
            Ok(p) => {
                budget.charge(pipe::CAPACITY);
                self.pipe = Some(p);
                true
            }
            Err(e) => {
                trace!("no pipe ({e}): read and write instead");
                false
            }
        }
    }

    /// Move what `from` holds into the (empty) pipe: bytes moved, 0 at the
    /// end of the stream, `WouldBlock` when `from` had nothing.
    pub fn fill_pipe(&mut self, from: &TcpStream) -> io::Result<usize> {
        match &mut self.pipe {
            Some(p) => p.fill(from),
            None => Err(ErrorKind::WouldBlock.into()),
        }
    }

    /// Move what the pipe holds into the socket; true when it is empty now
    /// (and the other leg may be read again).
    pub fn drain_pipe(&mut self) -> io::Result<bool> {
        let Some(p) = &mut self.pipe else { return Ok(true) };
        p.drain(&self.socket)?;
        self.blocked = p.len > 0;
        Ok(!self.blocked)
    }

    /// The direction into this leg has ended: its (empty) pipe goes, refunded.
    pub fn close_pipe(&mut self, budget: &mut Budget) {
        if self.pipe.as_ref().is_some_and(|p| p.len == 0) {
            self.pipe = None;
            budget.refund(pipe::CAPACITY);
        }
    }

    /// The interest registered now.
    pub fn interest(&self) -> Option<Interest> {
        self.interest
    }

    /// Register the socket for `token`, asking for `interest`.
    pub fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        registry.register(&mut self.socket, token, interest)?;
        self.interest = Some(interest);
        Ok(())
    }

    /// Ask for `wanted` if it is not what is registered already (one
    /// `epoll_ctl` only when it changes).
    pub fn want(&mut self, registry: &Registry, token: Token, wanted: Interest) -> io::Result<()> {
        if self.interest != Some(wanted) {
            trace!("{token:?}: interest now {wanted:?}");
            registry.reregister(&mut self.socket, token, wanted)?;
            self.interest = Some(wanted);
        }
        Ok(())
    }

    /// Make room for `extra` more waiting bytes; false if the allocator says no.
    pub fn reserve(&mut self, extra: usize, max_pending: usize, budget: &mut Budget) -> bool {
        self.unsent.reserve(extra, max_pending, budget)
    }

    /// Write as much of what waits as the socket takes: the buffer's bytes,
    /// then the pipe's.
    pub fn flush(&mut self, budget: &mut Budget) -> io::Result<()> {
        while !self.unsent.is_empty() {
            let front = self.unsent.front();
            let len = front.len();
            let n = write_some(&mut self.socket, front)?;
            self.unsent.consume(n, budget);
            if let Some(tls) = &mut self.tls {
                tls.sent += n as u64;
            }
            if n > 0 {
                self.starved = false; // memory freed up: the other leg may be read again
            }
            if n < len {
                return Ok(()); // the socket is full
            }
        }
        self.drain_pipe().map(|_| ())
    }

    /// Pass the other leg's FIN on: `shutdown(SHUT_WR)`, once nothing waits.
    pub fn shut_down(&mut self) -> io::Result<()> {
        self.shut = true;
        self.socket.shutdown(Shutdown::Write)
    }

    /// Make the socket's close a reset (`SO_LINGER` 0): the peer sees
    /// "connection reset", as it would had it talked to the other side itself.
    pub fn reset_on_close(&self) {
        // The peer may be gone already: nothing more to do about it then.
        let _ = socket2::SockRef::from(&self.socket).set_linger(Some(Duration::ZERO));
    }

    /// What is on its way through this socket, for `--idle-timeout`.
    pub fn in_flight(&self) -> io::Result<InFlight> {
        let (unread, unacked) = sock::queued(&self.socket)?;
        Ok(InFlight { unread, unacked, owed: self.owed() > 0 })
    }
}

/// Write `data` to `socket` now, after what already waits in `unsent`; keep
/// what the socket will not take. Returns the bytes written now.
pub fn send_into(
    socket: &mut TcpStream,
    unsent: &mut Unsent,
    data: &[u8],
    max_pending: usize,
    budget: &mut Budget,
) -> io::Result<usize> {
    let mut written = 0;
    // Bytes already waiting must go first: never write past them.
    if unsent.is_empty() {
        written = write_some(socket, data)?;
    }
    let rest = &data[written..];
    if !rest.is_empty() {
        if !unsent.reserve(rest.len(), max_pending, budget) {
            // Only a leg owed nothing gets here (the others made room
            // before reading): its bytes cannot be kept, so it ends, alone.
            return Err(ErrorKind::OutOfMemory.into());
        }
        unsent.push(rest);
    }
    Ok(written)
}

/// Write as much of `data` as the socket takes now; return how much it took.
pub fn write_some(socket: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < data.len() {
        match socket.write(&data[written..]) {
            // A socket never takes 0 bytes of a non-empty buffer unless it is broken.
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}
