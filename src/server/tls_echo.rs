//! One TLS echo client: the plaintext echo's rules with TLS in between.
//!
//! `echo.rs` reads a client's bytes and writes them back. Here what is read
//! is TLS records, and a [`ServerSession`] (`tls/session.rs`) turns them into
//! the client's data and the echo back into records. Everything else is the
//! plaintext echo's, from `pending.rs`: what the socket would not take is
//! kept and bounded by `--max-pending` and `--max-pending-total`, reading
//! stops at the bound and resumes as the client reads, a turn ends after
//! [`READS_PER_TURN`] reads.
//!
//! Where a client's bytes are, and how each is counted:
//!
//! 1. **Read**: TLS bytes go into the loop's one shared buffer, after the
//!    bytes of a record not complete at the last read (the session's carry,
//!    at most one record, charged to the [`Budget`]).
//! 2. **Decrypt**: rustls decrypts whole records in place there and hands
//!    each record's data over; it is copied once into the loop-wide
//!    plaintext scratch (also in the shared buffer: nothing per connection).
//! 3. **Encrypt**: the data is encrypted into the loop-wide room for TLS
//!    bytes to send, and written to the socket at once; only what the socket
//!    will not take is kept, in the connection's pending bytes.
//!
//! So a client that keeps up, or idles, holds no buffer once its handshake
//! is done: its socket, rustls's state (keys, sequence numbers) and a few
//! counters.
//!
//! **The handshake.** A client's hello is answered at once with the server's
//! flight (written like any echo: what the socket will not take is kept). The
//! loop bounds the time a handshake may take (`--handshake-timeout`, via
//! [`Handler::set_up`]); a client that sends nothing or trickles its hello is
//! closed when it runs out, and costs nothing until then but its slot.
//!
//! **The end.** The client's `close_notify`, or its FIN, ends its input as a
//! FIN ends the plaintext echo's: what is owed still goes out, then our
//! `close_notify`, then our FIN (by closing). A graceful stop of the server
//! sends `close_notify` before its FIN when nothing is owed.

use std::io::{self, ErrorKind, Read};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use log::{debug, log_enabled, trace, Level};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::ServerConfig;

use super::pending::{self, write_some, Pending};
use crate::event_loop::{
    Budget, Closed, Handler, InFlight, Next, Readiness, Service, Turn, Wire, READS_PER_TURN,
};
use crate::preview::preview;
use crate::sock::{self, short_read_empties_queue};
use crate::tls::client_failed;
use crate::tls::session::{self, Out, ServerSession, Transmit};

/// The TLS echo service: every admitted client gets a [`TlsConnection`].
#[derive(Debug, Clone)]
pub struct TlsEcho {
    config: Arc<ServerConfig>,
    handshake_timeout: Duration,
    read_size: usize,
}

impl TlsEcho {
    /// Serve with `config` (`tls::Identity::server_config`), closing
    /// handshakes that take longer than `handshake_timeout`, reading at most
    /// `read_size` bytes at a time (`--read-size`).
    pub fn new(config: Arc<ServerConfig>, handshake_timeout: Duration, read_size: usize) -> Self {
        TlsEcho { config, handshake_timeout, read_size }
    }
}

impl Service for TlsEcho {
    type Handler = TlsConnection;
    const VERB: &'static str = "echoed";
    const LOG: &'static str = "progjar::server";

    fn open(
        &mut self,
        socket: TcpStream,
        peer: SocketAddr,
        max_pending: usize,
    ) -> io::Result<TlsConnection> {
        sock::serve_at_once(&socket);
        let session = ServerSession::server(Arc::clone(&self.config))
            .map_err(|e| io::Error::other(format!("cannot start TLS: {e}")))?;
        Ok(TlsConnection {
            socket,
            peer,
            session,
            pending: Pending::new(max_pending),
            interest: None,
            read_closed: false,
            read_size: self.read_size,
            held: 0,
            read: 0,
            written: 0,
            encrypted: 0,
            echoed: 0,
        })
    }

    fn setup_timeout(&self) -> Option<Duration> {
        Some(self.handshake_timeout)
    }

    fn buffer_size(&self, read_size: usize) -> usize {
        session::scratch_size(read_size)
    }
}

/// The state of one TLS echo client.
#[derive(Debug)]
pub struct TlsConnection {
    socket: TcpStream,
    peer: SocketAddr,
    session: ServerSession,
    /// TLS bytes owed to the client (the echo, a handshake flight), and the bound.
    pending: Pending,
    /// What we asked the registry for last; `None` before registration.
    interest: Option<Interest>,
    /// The client sends nothing more: its `close_notify`, or its FIN.
    read_closed: bool,
    /// Bytes asked of each read (`--read-size`).
    read_size: usize,
    /// What the session's carry has been charged to the budget.
    held: usize,
    /// TLS bytes read from and written to the socket (for `--record`).
    read: u64,
    written: u64,
    /// The client's bytes encrypted for the echo so far...
    encrypted: u64,
    /// ...and those of them known to have left (every TLS byte sent): the
    /// close line's and the summary's count.
    echoed: u64,
}

/// Where the session's TLS bytes go: to the socket now, what it will not take
/// kept in `pending`.
struct ToClient<'a> {
    socket: &'a mut TcpStream,
    pending: &'a mut Pending,
    budget: &'a mut Budget,
    peer: SocketAddr,
    written: &'a mut u64,
}

impl Transmit for ToClient<'_> {
    fn transmit(&mut self, tls: &[u8]) -> io::Result<()> {
        *self.written += self.pending.send(self.socket, tls, self.budget, self.peer)? as u64;
        Ok(())
    }
}

/// Where `close_notify` goes when the server stops: to the socket, or nowhere.
struct Direct<'a>(&'a mut TcpStream, SocketAddr);

impl Transmit for Direct<'_> {
    fn transmit(&mut self, tls: &[u8]) -> io::Result<()> {
        write_some(self.0, tls, self.1).map(|_| ())
    }
}

impl TlsConnection {
    /// Flush, then read and echo, as `ready` allows; send `close_notify` once
    /// the client's input is over. Returns whether it made all a turn's reads
    /// with more probably queued.
    fn step(
        &mut self,
        ready: Readiness,
        buf: &mut [u8],
        budget: &mut Budget,
    ) -> Result<bool, Closed> {
        if ready.expired && self.session.handshaking() {
            return Err(Closed::HandshakeTimeout);
        }
        if ready.error {
            if let Some(e) = self.socket.take_error().map_err(|e| Closed::from_error(&e))? {
                return Err(Closed::from_error(&e));
            }
        }
        let was_paused = self.pending.paused(budget);
        if self.pending.owed() > 0 && (ready.writable || ready.write_closed) {
            let n = self.pending.flush(&mut self.socket, budget, self.peer);
            self.written += n.map_err(|e| Closed::from_error(&e))? as u64;
        }
        // As in the plaintext echo (`echo.rs`): a resumed connection reads
        // until WouldBlock, since no event will announce what waits.
        let resumed = was_paused && !self.pending.paused(budget);
        let mut more = false;
        if ready.readable || ready.read_closed || resumed {
            more = self.echo(buf, ready.read_closed || resumed || ready.again, budget)?;
        }
        if self.read_closed && !self.session.close_sent() && !self.session.handshaking() {
            let (_, _, room) = session::split_scratch(buf);
            let peer = self.peer;
            let to = ToClient {
                socket: &mut self.socket,
                pending: &mut self.pending,
                budget,
                peer,
                written: &mut self.written,
            };
            let mut out = Out::new(room, to);
            let closed = self.session.close(&mut out);
            closed.map_err(|e| failed(&self.session, peer, e))?;
            out.finish().map_err(|e| Closed::from_error(&e))?;
        }
        self.delivered();
        Ok(more)
    }

    /// Read what the kernel holds, a read at a time, and echo each.
    fn echo(&mut self, buf: &mut [u8], drain: bool, budget: &mut Budget) -> Result<bool, Closed> {
        let (incoming, plain, room) = session::split_scratch(buf);
        let mut reads = 0;
        while !self.read_closed && !self.pending.paused(budget) {
            if reads == READS_PER_TURN {
                trace!(
                    "{}: made a turn's {READS_PER_TURN} reads, back after the others",
                    self.peer
                );
                return Ok(true);
            }
            if !self.pending.room_to_read(room.len(), budget, self.peer) {
                break;
            }
            let carried = self.session.unload(incoming);
            let asked = self.read_size.min(incoming.len() - carried);
            reads += 1;
            match self.socket.read(&mut incoming[carried..carried + asked]) {
                Ok(0) => self.end_of_input(carried)?,
                Ok(n) => {
                    trace!("read from {}: {n} TLS bytes", self.peer);
                    self.read += n as u64;
                    self.pass(&mut incoming[..carried + n], plain, room, budget)?;
                    if !drain && short_read_empties_queue(n, asked) {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(Closed::from_error(&e)),
            }
        }
        Ok(false)
    }

    /// The client's FIN: the end of its input, or of a handshake or a record
    /// it had not finished.
    fn end_of_input(&mut self, carried: usize) -> Result<(), Closed> {
        trace!("read from {}: 0 bytes (end of stream)", self.peer);
        self.read_closed = true;
        match (self.session.handshaking(), self.read > 0, carried > 0) {
            // Connected and left without a word (a port check): nothing wrong.
            (true, false, _) => Ok(()),
            (true, true, _) => {
                Err(Closed::Tls("it closed the connection in the middle of the TLS handshake"))
            }
            (false, _, true) => {
                Err(Closed::Tls("its connection ended in the middle of a TLS record"))
            }
            (false, _, false) => Ok(()),
        }
    }

    /// Hand one read's TLS bytes (after the carried ones) to the session and
    /// echo what they held.
    fn pass(
        &mut self,
        tls: &mut [u8],
        plain: &mut [u8],
        room: &mut [u8],
        budget: &mut Budget,
    ) -> Result<(), Closed> {
        let handshaking = self.session.handshaking();
        let peer = self.peer;
        let to = ToClient {
            socket: &mut self.socket,
            pending: &mut self.pending,
            budget,
            peer,
            written: &mut self.written,
        };
        let mut out = Out::new(room, to);
        let len = match self.session.receive_into(tls, plain, &mut out) {
            Ok(len) => len,
            Err(e) => {
                // The alert saying why is gathered in `out`: send it, then close.
                let _ = out.finish();
                return Err(failed(&self.session, peer, e));
            }
        };
        if handshaking && !self.session.handshaking() {
            handshake_done(&self.session, peer);
        }
        self.read_closed |= self.session.peer_closed();
        if len > 0 {
            let data = &plain[..len];
            if log_enabled!(Level::Debug) {
                debug!("received {len} bytes from {} (decrypted): {}", self.peer, preview(data));
                debug!("sending back {len} bytes");
            }
            self.session.send(data, &mut out).map_err(|e| failed(&self.session, peer, e))?;
            self.encrypted += len as u64;
        }
        let budget = out.finish().map_err(|e| Closed::from_error(&e))?.budget;
        // The carry changed: charge or refund the difference.
        let held = self.session.held();
        budget.charge(held.saturating_sub(self.held));
        budget.refund(self.held.saturating_sub(held));
        self.held = held;
        self.delivered();
        Ok(())
    }

    /// Nothing is owed: every byte encrypted so far has left.
    fn delivered(&mut self) {
        if self.pending.owed() == 0 {
            self.echoed = self.encrypted;
        }
    }
}

/// Say, for the debug log, what the handshake agreed on.
fn handshake_done(session: &ServerSession, peer: SocketAddr) {
    let common = session.common();
    let version = common.protocol_version().map_or("TLS".into(), |v| format!("{v:?}"));
    let suite = common.negotiated_cipher_suite().map(|s| s.suite());
    let kx = common.negotiated_key_exchange_group().map(|g| g.name());
    debug!("{peer}: TLS handshake done: {version}, {suite:?}, {kx:?}");
}

/// The session failed: why, in the close line's words.
fn failed(session: &ServerSession, peer: SocketAddr, e: session::Error) -> Closed {
    debug!("{peer}: TLS: {e:?}");
    match e {
        session::Error::Tls(e) => {
            Closed::Tls(client_failed(&e, session.first_byte(), session.handshaking()))
        }
        session::Error::Io(e) => Closed::from_error(&e),
        session::Error::TooLarge => Closed::Tls("it sent a TLS message larger than 64 KiB"),
    }
}

impl Handler for TlsConnection {
    fn register(&mut self, registry: &Registry, key: usize) -> io::Result<()> {
        // A server's handshake begins with the client's hello: read first.
        registry.register(&mut self.socket, Token(key), Interest::READABLE)?;
        self.interest = Some(Interest::READABLE);
        Ok(())
    }

    fn ready(&mut self, ready: Readiness, turn: &mut Turn<'_>) -> Next {
        let more = match self.step(ready, turn.buf, turn.budget) {
            Ok(more) => more,
            Err(why) => return Next::Close(why),
        };
        let (socket, interest) = (&mut self.socket, &mut self.interest);
        pending::end_turn(&self.pending, socket, interest, self.read_closed, self.peer, turn, more)
    }

    fn held(&self) -> usize {
        self.pending.held() + self.held
    }

    fn in_flight(&self) -> io::Result<InFlight> {
        let (unread, unacked) = sock::queued(&self.socket)?;
        Ok(InFlight { unread, unacked, owed: self.pending.owed() > 0 })
    }

    fn stop(&mut self) {
        // close_notify only after every byte owed: otherwise the client's
        // stream is cut short, and it should see it was.
        if !self.session.handshaking() && self.pending.owed() == 0 {
            let mut room = [0; 256];
            let mut out = Out::new(&mut room, Direct(&mut self.socket, self.peer));
            if self.session.close(&mut out).is_ok() {
                let _ = out.finish();
            }
        }
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
        Wire {
            read: self.read,
            written: self.written,
            owed: self.pending.owed(),
            interest: self.interest,
            handshake: self.session.handshaking(),
        }
    }

    fn set_up(&self) -> bool {
        !self.session.handshaking()
    }
}
