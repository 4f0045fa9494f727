//! One echo client: its socket, its unsent bytes and its interest.
//!
//! The loop (`event_loop/mod.rs`) calls [`EchoConnection`]'s
//! [`Handler::ready`] whenever the connection's token shows up in a readiness
//! event. This file holds the whole echo protocol for one client:
//!
//! 1. **Read** into the loop's shared buffer until the kernel has nothing more.
//! 2. **Write** each piece straight back. Bytes the socket will not take yet
//!    (its send buffer is full because the client is slow to read) are copied
//!    into this connection's `pending` buffer, and the connection asks the loop
//!    for `WRITABLE` events only while that buffer holds something.
//! 3. **Backpressure**: once `pending` reaches `max_pending`, stop reading. The
//!    client's bytes then wait in the kernel's receive buffer, the kernel's TCP
//!    window closes, and the client's own `send` blocks: memory stays bounded
//!    and nothing is dropped. When `pending` drains, reading resumes. The same
//!    happens while all connections together hold `--max-pending-total`
//!    (`event_loop/memory.rs`), or when the allocator says no: a failed allocation never
//!    aborts the server, it only stops this client's reading.
//! 4. **Half-close**: a read of 0 bytes means the client shut its write side.
//!    Finish sending what is pending, then close: with nothing left unread,
//!    close(2) sends our FIN after the last echoed byte (the client sees EOF).
//!
//! Readiness is edge-triggered (mio's only mode): an event says "something
//! changed", once. So every read and write loop runs until the kernel says
//! `WouldBlock`, or until it is certain nothing more is there: otherwise the
//! rest would wait for an event that never comes. The one exception is
//! fairness: a client that sends as fast as we read could keep that loop going
//! forever while everyone else waits, so a turn ends after [`READS_PER_TURN`]
//! reads and the connection tells the loop to come back ([`Next::Again`]).

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};

use log::{debug, log_enabled, trace, warn, Level};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::event_loop::{
    Budget, Closed, Handler, InFlight, Next, Readiness, Turn, Wire, READS_PER_TURN,
};
use crate::preview::preview;
use crate::sock::{self, short_read_empties_queue};

/// After a burst is sent, a pending buffer larger than this is freed rather
/// than kept: 64 KiB is one full read, so a connection that overflows now and
/// then does not allocate each time, while a slow reader's megabytes go back
/// to the allocator as soon as it catches up.
const KEEP_PENDING_CAPACITY: usize = 64 * 1024;

/// The state of one echo client.
#[derive(Debug)]
pub struct EchoConnection {
    socket: TcpStream,
    /// Who it is, for logs (and the per-address count).
    pub peer: SocketAddr,
    /// Bytes read but not yet written back, oldest first. A ring buffer:
    /// writing from the front and appending at the back never moves a byte,
    /// and a client that does not read costs at most `max_pending` plus one
    /// read. Its capacity is charged to the global [`Budget`].
    pending: VecDeque<u8>,
    /// Stop reading while this many bytes are owed (`--max-pending`).
    max_pending: usize,
    /// What we asked the registry for last; `None` before registration.
    interest: Option<Interest>,
    /// The client has shut its write side (a read returned 0).
    read_closed: bool,
    /// `pending` could not grow (the allocator said no): read no more until
    /// some of it has been sent.
    starved: bool,
    /// Bytes read from the client so far (for `--record`).
    read: u64,
    /// Bytes echoed back so far.
    echoed: u64,
}

impl EchoConnection {
    /// Wrap an accepted socket; the loop registers it next.
    pub fn new(socket: TcpStream, peer: SocketAddr, max_pending: usize) -> EchoConnection {
        EchoConnection {
            socket,
            peer,
            pending: VecDeque::new(),
            max_pending,
            interest: None,
            read_closed: false,
            starved: false,
            read: 0,
            echoed: 0,
        }
    }

    /// How many bytes are owed to the client.
    fn owed(&self) -> usize {
        self.pending.len()
    }

    /// Flush, then read and echo, as `ready` allows. Returns whether it made
    /// all a turn's reads with more probably queued.
    fn step(&mut self, ready: Readiness, buf: &mut [u8], budget: &mut Budget) -> io::Result<bool> {
        if ready.error {
            if let Some(e) = self.socket.take_error()? {
                return Err(e);
            }
        }
        let was_paused = self.paused(budget);
        if self.owed() > 0 && (ready.writable || ready.write_closed) {
            self.flush(budget)?;
        }
        // Read if the event says there is something to read, or if the flush
        // just took us below the backpressure bound: data (or the EOF) that
        // arrived while we were not reading raised no new event, so we must
        // go and look ourselves. The same holds when we come back after a
        // turn that ran out of budget: the EOF may be queued behind the data,
        // its event already spent, so that turn reads until WouldBlock too.
        let resumed = was_paused && !self.paused(budget);
        if ready.readable || ready.read_closed || resumed {
            return self.echo(buf, ready.read_closed || resumed || ready.again, budget);
        }
        Ok(false)
    }

    /// True while the connection must not read more: it owes `max_pending`,
    /// or it owes anything while the global budget is spent or its buffer
    /// could not grow. A client owed nothing is always served.
    fn paused(&self, budget: &Budget) -> bool {
        let owed = self.owed();
        owed >= self.max_pending || (owed > 0 && (self.starved || budget.spent()))
    }

    /// Paused by the global budget alone, with more to read once it has room.
    fn waits_for_room(&self, budget: &Budget) -> bool {
        budget.spent() && !self.read_closed && !self.starved && self.owed() < self.max_pending
    }

    /// Read what the kernel holds and write each piece back.
    ///
    /// `drain` asks to read until `WouldBlock` even after a short read: needed
    /// when the EOF may already be queued behind the data, or when we resume
    /// reading after a pause and no event will announce what is queued.
    /// Returns true when [`READS_PER_TURN`] ran out before the queue did.
    fn echo(&mut self, buf: &mut [u8], drain: bool, budget: &mut Budget) -> io::Result<bool> {
        let mut reads = 0;
        while !self.read_closed && !self.paused(budget) {
            if reads == READS_PER_TURN {
                trace!(
                    "{}: made a turn's {READS_PER_TURN} reads, back after the others",
                    self.peer
                );
                return Ok(true);
            }
            // Owing bytes already, a read may have to be kept whole: make room
            // first, so that a failed allocation stops reading instead of
            // losing bytes already read. (Owing nothing, the hot path, skips this.)
            if self.owed() > 0 && !self.reserve(buf.len(), budget) {
                warn!("{}: out of memory for unsent bytes; reading paused", self.peer);
                self.starved = true;
                break;
            }
            reads += 1;
            match self.socket.read(buf) {
                Ok(0) => {
                    // FIN: what is pending still goes out, then we close.
                    trace!("read from {}: 0 bytes (end of stream)", self.peer);
                    self.read_closed = true;
                }
                Ok(n) => {
                    trace!("read from {}: {n} bytes", self.peer);
                    self.read += n as u64;
                    if log_enabled!(Level::Debug) {
                        debug!("received {n} bytes from {}: {}", self.peer, preview(&buf[..n]));
                        debug!("sending back {n} bytes");
                    }
                    self.send(&buf[..n], budget)?;
                    // A short read emptied the receive queue (`sock.rs` says
                    // why that holds and when it does not): one syscall saved.
                    if !drain && short_read_empties_queue(n, buf.len()) {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    // The receive queue is empty: the next byte brings a new event.
                    trace!("read from {}: WouldBlock", self.peer);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Write `data` back now; keep in `pending` what the socket will not take.
    fn send(&mut self, data: &[u8], budget: &mut Budget) -> io::Result<()> {
        let mut written = 0;
        // Bytes already owed must go first: never write past them.
        if self.owed() == 0 {
            written = write_some(&mut self.socket, data, self.peer)?;
        }
        self.echoed += written as u64;
        let rest = &data[written..];
        if !rest.is_empty() {
            if !self.reserve(rest.len(), budget) {
                // Only a client owed nothing gets here (the others made room
                // before reading): its bytes cannot be kept, so it ends, alone.
                warn!("{}: out of memory for {} unsent bytes: closing", self.peer, rest.len());
                return Err(ErrorKind::OutOfMemory.into());
            }
            self.pending.extend(rest);
        }
        Ok(())
    }

    /// Make room in `pending` for `extra` more bytes, so that appending them
    /// allocates nothing; false if the allocator says no.
    ///
    /// Grows by doubling, as a Vec would, but never past what can be owed
    /// (reading stops at `max_pending`, and one read adds `extra`), nor past
    /// the budget's room by more than `extra`.
    fn reserve(&mut self, extra: usize, budget: &mut Budget) -> bool {
        let (len, capacity) = (self.pending.len(), self.pending.capacity());
        let needed = len.saturating_add(extra);
        if needed <= capacity {
            return true;
        }
        let target = capacity
            .saturating_mul(2)
            .min(self.max_pending.saturating_add(extra))
            .min(capacity.saturating_add(budget.room()))
            .max(needed);
        if self.pending.try_reserve_exact(target - len).is_err()
            && self.pending.try_reserve_exact(extra).is_err()
        {
            return false;
        }
        budget.charge(self.pending.capacity() - capacity);
        true
    }

    /// Write as much of `pending` as the socket takes.
    fn flush(&mut self, budget: &mut Budget) -> io::Result<()> {
        while !self.pending.is_empty() {
            let (front, _) = self.pending.as_slices();
            let len = front.len();
            let n = write_some(&mut self.socket, front, self.peer)?;
            self.pending.drain(..n);
            self.echoed += n as u64;
            if n > 0 {
                self.starved = false; // memory freed up: try reading again
            }
            if n < len {
                break; // the socket is full
            }
        }
        if self.pending.is_empty() {
            self.pending.clear();
            // Keep a small buffer for the next overflow, unless memory is short.
            if self.pending.capacity() > KEEP_PENDING_CAPACITY || budget.spent() {
                budget.refund(self.pending.capacity());
                self.pending = VecDeque::new();
            }
        }
        Ok(())
    }

    /// After a step: finish the connection, or ask for the events it now needs.
    fn settle(&mut self, registry: &Registry, token: Token) -> Option<Closed> {
        // Only the connection's own bound changes its interest: paused by the
        // budget (or the allocator) it keeps READABLE, sparing two epoll_ctl
        // calls per pause, and an event then merely finds it still paused.
        let want_read = !self.read_closed && self.owed() < self.max_pending;
        let want_write = self.owed() > 0;
        let wanted = match (want_read, want_write) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (true, false) => Interest::READABLE,
            (false, true) => Interest::WRITABLE,
            (false, false) => {
                // The client closed its side and has every byte back. Dropping
                // the socket closes it, and close(2) with nothing left unread
                // sends our FIN after the last byte: no shutdown(2) needed.
                return Some(Closed::PeerClosed);
            }
        };
        if self.interest != Some(wanted) {
            trace!("{}: interest now {wanted:?}", self.peer);
            if let Err(e) = registry.reregister(&mut self.socket, token, wanted) {
                return Some(Closed::from_error(&e));
            }
            self.interest = Some(wanted);
        }
        None
    }
}

impl Handler for EchoConnection {
    fn register(&mut self, registry: &Registry, key: usize) -> io::Result<()> {
        // At first we only want to read.
        registry.register(&mut self.socket, Token(key), Interest::READABLE)?;
        self.interest = Some(Interest::READABLE);
        Ok(())
    }

    fn ready(&mut self, ready: Readiness, turn: &mut Turn<'_>) -> Next {
        let more = match self.step(ready, turn.buf, turn.budget) {
            Ok(more) => more,
            Err(e) => return Next::Close(Closed::from_error(&e)),
        };
        // Stopped reading because the budget is spent: no event will say when
        // it is not, so ask the loop to come back then.
        if self.owed() > 0 && self.waits_for_room(turn.budget) {
            turn.budget.wait(turn.key);
        }
        match self.settle(turn.registry, Token(turn.key)) {
            Some(why) => Next::Close(why),
            None if more => Next::Again,
            None => Next::Wait,
        }
    }

    fn held(&self) -> usize {
        self.pending.capacity()
    }

    fn in_flight(&self) -> io::Result<InFlight> {
        let (unread, unacked) = sock::queued(&self.socket)?;
        Ok(InFlight { unread, unacked, owed: self.owed() > 0 })
    }

    fn stop(&mut self) {
        // The peer may be gone already: nothing to do about it then.
        let _ = self.socket.shutdown(Shutdown::Write);
    }

    fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn moved(&self) -> u64 {
        self.echoed
    }

    fn wire(&self) -> Wire {
        Wire { read: self.read, written: self.echoed, owed: self.owed(), interest: self.interest }
    }
}

/// Write as much of `data` as the socket takes now; return how much it took.
fn write_some(socket: &mut TcpStream, data: &[u8], peer: SocketAddr) -> io::Result<usize> {
    let mut written = 0;
    while written < data.len() {
        match socket.write(&data[written..]) {
            // A socket never takes 0 bytes of a non-empty buffer unless it is broken.
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                trace!("write to {peer}: {n} bytes");
                written += n;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                // The client reads slowly: the rest waits in `pending` for WRITABLE.
                trace!("write to {peer}: WouldBlock with {} bytes left", data.len() - written);
                break;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}
