//! One relayed client: two legs on one slab entry, and the bytes between them.
//!
//! The loop gives this connection a turn whenever either of its sockets is
//! ready ([`Readiness::source`] says which: 0 the client, 1 the realserver).
//! A turn does, for each direction (client to realserver, realserver to
//! client), what the echo server does for its one direction:
//!
//! 1. **Read** the leg that is readable into the loop's shared buffer, and
//!    **write** each piece straight into the other leg. What that socket will
//!    not take waits in the other leg's buffer ([`super::unsent`]), and that
//!    leg asks for `WRITABLE` only while something waits.
//! 2. **Backpressure, both ways**: once a leg owes `--max-pending` bytes, or
//!    owes any while the loop's budget is spent, the leg that feeds it is not
//!    read. Its bytes wait in the kernel, its TCP window closes, its sender
//!    blocks: a client that sends and never reads costs at most
//!    `--max-pending` here, and so does a server that does.
//! 3. **Half-close, both ways**: a read of 0 bytes is that side's FIN. Once
//!    the other leg has every byte, it gets `shutdown(SHUT_WR)`: the FIN goes
//!    on, and the other direction goes on flowing. The connection ends when
//!    both directions have ended this way. (The course's relay never passes
//!    a FIN on, so a server that waits for its client's EOF waits forever.)
//! 4. **Resets, both ways**: an error on either leg (a reset, a write to a
//!    peer that is gone) resets the other (`SO_LINGER` 0, then close), so each
//!    side sees what it would have seen talking to the other directly.
//!
//! Before all that, the connect to the realserver: the socket is registered
//! at once, the client is not read until the kernel says the connect is done,
//! and a connect that fails, or is not done within `--connect-timeout`
//! (the loop's setup timeout, [`Readiness::EXPIRED`]), resets the client.

use std::io::{self, ErrorKind, Read};
use std::net::SocketAddr;

use log::{debug, trace, warn};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::leg::{Leg, Side};
use super::{pipe, target, words};
use crate::event_loop::{
    Budget, Closed, Handler, InFlight, Next, Readiness, Turn, Wire, READS_PER_TURN,
};
use crate::sock::short_read_empties_queue;

/// Where the connect to the realserver is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Under way: the client is not read yet.
    Connecting,
    /// Refused at once by our own kernel (the `errno`): said at the first turn.
    Failed(i32),
    /// Done: bytes flow.
    Open,
}

/// Why a relayed connection ends before both its directions have.
#[derive(Debug)]
enum Ended {
    /// The connect to the realserver failed or took too long.
    Connect(io::Error),
    /// A leg's socket failed: its peer reset, or is gone.
    Leg(Side, io::Error),
}

/// One relayed client: its socket and the realserver's, and what each owes.
#[derive(Debug)]
pub struct RelayConnection {
    /// The client's leg and the realserver's, in [`Side`] order.
    legs: [Leg; 2],
    /// The client's address, for logs (and the per-address count).
    peer: SocketAddr,
    /// Stop reading a leg while the other owes this many bytes (`--max-pending`).
    max_pending: usize,
    phase: Phase,
    /// Busy directions may go by `splice` (not `--no-splice`).
    splice: bool,
}

impl RelayConnection {
    /// Relay `client` through `server`, whose connect `started` (or failed at
    /// once); busy directions by `splice` if `splice`.
    pub fn new(
        (client, server): (TcpStream, TcpStream),
        started: io::Result<()>,
        peer: SocketAddr,
        max_pending: usize,
        splice: bool,
    ) -> RelayConnection {
        let phase = match started {
            Ok(()) => Phase::Connecting,
            Err(e) => Phase::Failed(e.raw_os_error().unwrap_or(libc::EIO)),
        };
        let legs = [Leg::new(client), Leg::new(server)];
        RelayConnection { legs, peer, max_pending, phase, splice }
    }

    fn leg(&self, side: Side) -> &Leg {
        &self.legs[side.index()]
    }

    fn leg_mut(&mut self, side: Side) -> &mut Leg {
        &mut self.legs[side.index()]
    }

    /// The leg read from and the leg written to, for the direction out of `from`.
    fn direction(&mut self, from: Side) -> (&mut Leg, &mut Leg) {
        let [client, server] = &mut self.legs;
        match from {
            Side::Client => (client, server),
            Side::Server => (server, client),
        }
    }

    /// True while the leg that feeds `to` must not be read: `to` owes
    /// `max_pending`, or owes anything while the budget is spent or its
    /// buffer could not grow. A leg owed nothing never stops the other.
    fn paused(&self, to: Side, budget: &Budget) -> bool {
        let leg = self.leg(to);
        let owed = leg.owed();
        leg.blocked || owed >= self.max_pending || (owed > 0 && (leg.starved || budget.spent()))
    }

    /// Paused by the budget alone, in some direction with more to read.
    fn waits_for_room(&self, budget: &Budget) -> bool {
        budget.spent()
            && Side::BOTH.into_iter().any(|from| {
                let to = self.leg(from.other());
                !self.leg(from).eof && !to.starved && to.owed() > 0 && to.owed() < self.max_pending
            })
    }

    /// What the turn can do in the connection's phase.
    fn step(&mut self, ready: Readiness, turn: &mut Turn<'_>) -> Result<bool, Ended> {
        if ready.error {
            let side = Side::of(ready.source);
            let failed = self.leg_mut(side).socket().take_error();
            match (failed, self.phase) {
                (Ok(Some(e)) | Err(e), Phase::Connecting) if side == Side::Server => {
                    return Err(Ended::Connect(e))
                }
                (Ok(Some(e)) | Err(e), _) => return Err(Ended::Leg(side, e)),
                (Ok(None), _) => {}
            }
        }
        match self.phase {
            Phase::Failed(errno) => Err(Ended::Connect(io::Error::from_raw_os_error(errno))),
            Phase::Connecting if ready.expired => Err(Ended::Connect(io::Error::new(
                ErrorKind::TimedOut,
                "no answer within --connect-timeout",
            ))),
            Phase::Connecting if ready.again || Side::of(ready.source) == Side::Client => Ok(false),
            Phase::Connecting => {
                let server = self.leg_mut(Side::Server).socket();
                if !target::connected(server).map_err(Ended::Connect)? {
                    return Ok(false);
                }
                debug!(target: words::LOG, "{}: connected to the realserver", self.peer);
                self.phase = Phase::Open;
                // What each side sent meanwhile raised no event we acted on:
                // read both as if the loop came back by itself.
                self.relay(Readiness::AGAIN, turn)
            }
            Phase::Open if ready.expired => Ok(false),
            Phase::Open => self.relay(ready, turn),
        }
    }

    /// Both directions' part of a turn; true when a leg made all a turn's
    /// reads with more probably queued.
    fn relay(&mut self, ready: Readiness, turn: &mut Turn<'_>) -> Result<bool, Ended> {
        let mut more = false;
        for from in Side::BOTH {
            let to = from.other();
            let was_paused = self.paused(to, turn.budget);
            let to_ready = !ready.again && ready.source == to.index();
            if to_ready && (ready.writable || ready.write_closed) && self.leg(to).owed() > 0 {
                self.leg_mut(to).flush(turn.budget).map_err(|e| Ended::Leg(to, e))?;
            }
            self.pass_fin(from)?;
            // Read if the event says so, or if the flush just ended a pause:
            // data (or the FIN) that came meanwhile raised no new event.
            let resumed = was_paused && !self.paused(to, turn.budget);
            let from_ready = ready.again || ready.source == from.index();
            if (from_ready && (ready.readable || ready.read_closed)) || resumed {
                let drain = ready.read_closed || resumed || ready.again;
                more |= self.pump(from, drain, turn)?;
            }
        }
        Ok(more)
    }

    /// Read `from` and write each piece into the other leg, until the kernel
    /// has nothing more, the other leg is full, or the turn's reads are used.
    /// `drain` reads until `WouldBlock` even after a short read (a FIN may be
    /// queued behind the data, or no event announces what waits).
    fn pump(&mut self, from: Side, drain: bool, turn: &mut Turn<'_>) -> Result<bool, Ended> {
        let (to, peer, max_pending, splice) =
            (from.other(), self.peer, self.max_pending, self.splice);
        if self.leg(to).piped() {
            return self.splice_burst(from, turn);
        }
        for _ in 0..READS_PER_TURN {
            if self.leg(from).eof || self.paused(to, turn.budget) {
                return Ok(false);
            }
            let (src, dst) = self.direction(from);
            // Owing bytes already, a read may have to be kept whole: make room
            // first, so that a failed allocation stops reading instead of
            // losing bytes already read. (Owing nothing, the hot path, skips this.)
            if dst.owed() > 0 && !dst.reserve(turn.buf.len(), max_pending, turn.budget) {
                warn!(target: words::LOG, "{peer}: out of memory for unsent bytes; reading paused");
                dst.starved = true;
                return Ok(false);
            }
            match src.socket().read(turn.buf) {
                Ok(0) => {
                    trace!("{peer}: {from} sent its FIN");
                    src.eof = true;
                    words::no_more_data(turn.lines, from, to, src.read);
                    self.pass_fin(from)?;
                    return Ok(false);
                }
                Ok(n) => {
                    let data = &turn.buf[..n];
                    words::piece(turn.lines, from, to, data, src.read);
                    src.read += n as u64;
                    dst.send(data, max_pending, turn.budget).map_err(|e| Ended::Leg(to, e))?;
                    if !drain && short_read_empties_queue(n, turn.buf.len()) {
                        return Ok(false);
                    }
                    // A full buffer, all of it taken, after a pipe's worth: a burst,
                    // whose rest goes by splice. (Before that, and with small reads
                    // such as --read-size 32, every piece is read and can be logged.)
                    let burst = n == turn.buf.len() && src.read >= pipe::CAPACITY as u64;
                    if burst && splice && dst.open_pipe(turn.budget) {
                        return self.splice_burst(from, turn);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Ended::Leg(from, e)),
            }
        }
        trace!("{peer}: {from} made a turn's {READS_PER_TURN} reads, back after the others");
        Ok(true)
    }

    /// A burst out of `from`: its bytes go to the other leg through the
    /// other leg's pipe (`pipe.rs`), a pipe's worth at a time, never through
    /// the proxy's memory. The pipe is filled only when empty, so a fill that
    /// finds nothing means `from` has nothing for now; a pipe the other
    /// socket will not empty pauses `from` until it does.
    fn splice_burst(&mut self, from: Side, turn: &mut Turn<'_>) -> Result<bool, Ended> {
        let to = from.other();
        for _ in 0..READS_PER_TURN {
            if self.leg(from).eof {
                return Ok(false);
            }
            let (src, dst) = self.direction(from);
            // The other socket is full: wait for WRITABLE (`blocked` pauses `from`).
            if !dst.drain_pipe().map_err(|e| Ended::Leg(to, e))? {
                return Ok(false);
            }
            match dst.fill_pipe(src.stream()) {
                Ok(0) => {
                    src.eof = true;
                    dst.close_pipe(turn.budget);
                    words::no_more_data(turn.lines, from, to, src.read);
                    self.pass_fin(from)?;
                    return Ok(false);
                }
                Ok(n) => {
                    words::progress(turn.lines, from, to, src.read, n as u64);
                    src.read += n as u64;
                }
                // The pipe was empty: `from` has nothing more for now.
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Ended::Leg(from, e)),
            }
        }
        Ok(true)
    }

    /// `from` sent its FIN: once the other leg has every byte, pass it on.
    fn pass_fin(&mut self, from: Side) -> Result<(), Ended> {
        let peer = self.peer;
        let (src, dst) = self.direction(from);
        if src.eof && !dst.shut && dst.owed() == 0 {
            trace!("{peer}: {from}'s FIN passed on (shutdown SHUT_WR)");
            dst.shut_down().map_err(|e| Ended::Leg(from.other(), e))?;
        }
        Ok(())
    }

    /// After a step: finish the connection, or ask for the events each leg
    /// now needs.
    fn settle(&mut self, registry: &Registry, key: usize) -> Option<Closed> {
        let [client, server] = &self.legs;
        if client.eof && server.shut && server.eof && client.shut {
            // Both directions ended, every byte delivered: close(2) now sends
            // nothing more than the FINs already sent.
            return Some(Closed::PeerClosed);
        }
        for side in Side::BOTH {
            let connecting = self.phase == Phase::Connecting;
            let other_owes = self.leg(side.other()).owed();
            let leg = self.leg(side);
            // Only a leg's own bound changes its interest, as in the echo: paused
            // by the budget it stays READABLE and an event merely finds it paused.
            let read = !leg.eof && other_owes < self.max_pending;
            let write = leg.owed() > 0 || (connecting && side == Side::Server);
            let wanted = match (read, write) {
                (true, true) => Interest::READABLE | Interest::WRITABLE,
                (true, false) => Interest::READABLE,
                (false, true) => Interest::WRITABLE,
                // Nothing to ask for: keep what is registered; its events find nothing to do.
                (false, false) => continue,
            };
            let token = token(key, side);
            if let Err(e) = self.leg_mut(side).want(registry, token, wanted) {
                return Some(Closed::from_error(&e));
            }
        }
        None
    }

    /// End the connection early: both legs reset, one line saying why.
    fn abort(&mut self, ended: Ended, turn: &mut Turn<'_>) -> Next {
        for leg in &self.legs {
            leg.reset_on_close();
        }
        match ended {
            Ended::Connect(e) => {
                words::cannot_connect(turn.lines, self.peer, &e);
                Next::Close(Closed::Error(e.kind()))
            }
            Ended::Leg(side, e) => {
                words::reset(turn.lines, self.peer, side, &e);
                Next::Close(Closed::from_error(&e))
            }
        }
    }
}

/// The token of `side`'s socket in slab slot `key`.
fn token(key: usize, side: Side) -> Token {
    Token(key * RelayConnection::SOURCES + side.index())
}

impl Handler for RelayConnection {
    const SOURCES: usize = 2;

    fn register(&mut self, registry: &Registry, key: usize) -> io::Result<()> {
        // The client is not read before the connect is done, but a reset of its
        // still comes as an event. The connect's end is the realserver's
        // socket becoming writable (or failing).
        let both = Interest::READABLE | Interest::WRITABLE;
        self.leg_mut(Side::Client).register(
            registry,
            token(key, Side::Client),
            Interest::READABLE,
        )?;
        self.leg_mut(Side::Server).register(registry, token(key, Side::Server), both)
    }

    fn ready(&mut self, ready: Readiness, turn: &mut Turn<'_>) -> Next {
        let more = match self.step(ready, turn) {
            Ok(more) => more,
            Err(ended) => return self.abort(ended, turn),
        };
        // Stopped reading because the budget is spent: no event will say when
        // it is not, so ask the loop to come back then.
        if self.waits_for_room(turn.budget) {
            turn.budget.wait(turn.key);
        }
        match self.settle(turn.registry, turn.key) {
            Some(why) => Next::Close(why),
            None if more => Next::Again,
            None => Next::Wait,
        }
    }

    fn held(&self) -> usize {
        self.legs.iter().map(Leg::held).sum()
    }

    fn in_flight(&self) -> io::Result<InFlight> {
        let (client, server) =
            (self.leg(Side::Client).in_flight()?, self.leg(Side::Server).in_flight()?);
        Ok(InFlight {
            unread: client.unread.saturating_add(server.unread),
            unacked: client.unacked.saturating_add(server.unacked),
            owed: client.owed || server.owed,
        })
    }

    fn stop(&mut self) {
        // Both peers may be gone already: nothing to do about it then.
        for leg in &mut self.legs {
            let _ = leg.socket().shutdown(std::net::Shutdown::Write);
        }
    }

    fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn moved(&self) -> u64 {
        // Bytes read from one leg and no longer owed to the other were written there.
        let delivered =
            |from: Side| self.leg(from).read.saturating_sub(self.leg(from.other()).owed() as u64);
        Side::BOTH.into_iter().map(delivered).sum()
    }

    fn wire(&self) -> Wire {
        let interest = self.legs.iter().filter_map(Leg::interest).reduce(|a, b| a | b);
        Wire {
            read: self.legs.iter().map(|l| l.read).sum(),
            written: self.moved(),
            owed: self.legs.iter().map(Leg::owed).sum(),
            interest,
            handshake: false,
        }
    }

    fn set_up(&self) -> bool {
        self.phase != Phase::Connecting
    }
}
