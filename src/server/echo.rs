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
//!    aborts the server, it only stops this client's reading. (`pending.rs`
//!    keeps these rules, for the TLS echo too.)
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

use std::io::{self, ErrorKind, Read};
use std::net::{Shutdown, SocketAddr};

use log::{debug, log_enabled, trace, Level};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::pending::{self, Pending};
use crate::event_loop::{
    Budget, Closed, Handler, InFlight, Next, Readiness, Turn, Wire, READS_PER_TURN,
};
use crate::preview::preview;
use crate::sock::{self, short_read_empties_queue};

/// The state of one echo client.
#[derive(Debug)]
pub struct EchoConnection {
    socket: TcpStream,
    /// Who it is, for logs (and the per-address count).
    pub peer: SocketAddr,
    /// Bytes read but not yet written back, and the bound on them.
    pending: Pending,
    /// What we asked the registry for last; `None` before registration.
    interest: Option<Interest>,
    /// The client has shut its write side (a read returned 0).
    read_closed: bool,
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
            pending: Pending::new(max_pending),
            interest: None,
            read_closed: false,
            read: 0,
            echoed: 0,
        }
    }

    /// Flush, then read and echo, as `ready` allows. Returns whether it made
    /// all a turn's reads with more probably queued.
    fn step(&mut self, ready: Readiness, buf: &mut [u8], budget: &mut Budget) -> io::Result<bool> {
        if ready.error {
            if let Some(e) = self.socket.take_error()? {
                return Err(e);
            }
        }
        let was_paused = self.pending.paused(budget);
        if self.pending.owed() > 0 && (ready.writable || ready.write_closed) {
            self.echoed += self.pending.flush(&mut self.socket, budget, self.peer)? as u64;
        }
        // Read if the event says there is something to read, or if the flush
        // just took us below the backpressure bound: data (or the EOF) that
        // arrived while we were not reading raised no new event, so we must
        // go and look ourselves. The same holds when we come back after a
        // turn that ran out of budget: the EOF may be queued behind the data,
        // its event already spent, so that turn reads until WouldBlock too.
        let resumed = was_paused && !self.pending.paused(budget);
        if ready.readable || ready.read_closed || resumed {
            return self.echo(buf, ready.read_closed || resumed || ready.again, budget);
        }
        Ok(false)
    }

    /// Read what the kernel holds and write each piece back.
    ///
    /// `drain` asks to read until `WouldBlock` even after a short read: needed
    /// when the EOF may already be queued behind the data, or when we resume
    /// reading after a pause and no event will announce what is queued.
    /// Returns true when [`READS_PER_TURN`] ran out before the queue did.
    fn echo(&mut self, buf: &mut [u8], drain: bool, budget: &mut Budget) -> io::Result<bool> {
        let mut reads = 0;
        while !self.read_closed && !self.pending.paused(budget) {
            if reads == READS_PER_TURN {
                trace!(
                    "{}: made a turn's {READS_PER_TURN} reads, back after the others",
                    self.peer
                );
                return Ok(true);
            }
            if !self.pending.room_to_read(buf.len(), budget, self.peer) {
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
                    let data = &buf[..n];
                    self.echoed +=
                        self.pending.send(&mut self.socket, data, budget, self.peer)? as u64;
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
        let (socket, interest) = (&mut self.socket, &mut self.interest);
        pending::end_turn(&self.pending, socket, interest, self.read_closed, self.peer, turn, more)
    }

    fn held(&self) -> usize {
        self.pending.held()
    }

    fn in_flight(&self) -> io::Result<InFlight> {
        let (unread, unacked) = sock::queued(&self.socket)?;
        Ok(InFlight { unread, unacked, owed: self.pending.owed() > 0 })
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
        let owed = self.pending.owed();
        Wire {
            read: self.read,
            written: self.echoed,
            owed,
            interest: self.interest,
            handshake: false,
        }
    }
}
