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
//!
//! **Intercepting** (`--intercept-cert`), each leg is a TLS session
//! (`secure.rs`) and all of the above holds with plaintext in place of bytes.
//! The realserver's handshake comes first: the client's leg is not read (its
//! hello waits in the kernel) until it is done. A `close_notify` is passed on
//! as `close_notify` and the FIN, a bare FIN as a FIN; the connect and both
//! handshakes share the setup timeout; a leg whose TLS fails gets its alert
//! and its FIN, and the other leg is reset.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;

use log::{debug, trace, warn};
use mio::{Interest, Registry, Token};

use super::leg::{Leg, Side};
use super::secure::{Broke, Failed, Received, Scratch, Secure};
use super::{pipe, target, words};
use crate::event_loop::{
    Budget, Closed, Handler, InFlight, Next, Readiness, Turn, Wire, READS_PER_TURN,
};
use crate::sock::short_read_empties_queue;
use end::Ended;

mod end;

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
    /// Relay the client's leg through the server's, whose connect `started`
    /// (or failed at once); busy directions by `splice` if `splice` (plain
    /// legs only).
    pub fn new(
        legs: [Leg; 2],
        started: io::Result<()>,
        peer: SocketAddr,
        max_pending: usize,
        splice: bool,
    ) -> RelayConnection {
        let phase = match started {
            Ok(()) => Phase::Connecting,
            Err(e) => Phase::Failed(e.raw_os_error().unwrap_or(libc::EIO)),
        };
        RelayConnection { legs, peer, max_pending, phase, splice }
    }

    /// The legs speak TLS (intercepting).
    fn tls(&self) -> bool {
        self.leg(Side::Client).tls().is_some()
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
    /// `max_pending`, or owes anything while the budget is spent, its
    /// buffer could not grow or its handshake is not done. A leg owed nothing
    /// never stops the other.
    fn paused(&self, to: Side, budget: &Budget) -> bool {
        let leg = self.leg(to);
        let owed = leg.owed();
        leg.blocked
            || owed >= self.max_pending
            || (owed > 0 && (leg.starved || budget.spent() || leg.handshaking()))
    }

    /// The client's leg is not read while the realserver's TLS handshake is
    /// going on: its hello is answered once the realserver has answered ours.
    fn gated(&self, from: Side) -> bool {
        from == Side::Client && self.leg(Side::Server).handshaking()
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
                let scratch = Scratch::new(turn.buf, self.tls());
                let (max_pending, server) = (self.max_pending, self.leg_mut(Side::Server));
                let hello = server.start_tls(scratch.room, max_pending, turn.budget);
                hello.map_err(|b| Ended::on(Side::Server, b))?;
                // What each side sent meanwhile raised no event we acted on:
                // read both as if the loop came back by itself.
                self.relay(Readiness::AGAIN, turn)
            }
            Phase::Open if ready.expired => {
                // Still in a handshake: the realserver's first (the client's waits for it).
                match Side::BOTH.into_iter().rev().find(|&side| self.leg(side).handshaking()) {
                    Some(side) => Err(Ended::Tls(side, Failed::timed_out(side == Side::Client))),
                    None => Ok(false),
                }
            }
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
            if to_ready && (ready.writable || ready.write_closed) && self.leg(to).to_write() > 0 {
                self.leg_mut(to).flush(turn.budget).map_err(|e| Ended::Leg(to, e))?;
            }
            self.pass_fin(from, turn.budget)?;
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
    /// queued behind the data, or no event announces what waits). True when
    /// the loop should come back (more is probably queued, or a handshake
    /// finished and the other leg may be read now).
    fn pump(&mut self, from: Side, drain: bool, turn: &mut Turn<'_>) -> Result<bool, Ended> {
        let (to, peer, max_pending, splice) =
            (from.other(), self.peer, self.max_pending, self.splice);
        if self.leg(to).piped() {
            return self.splice_burst(from, turn);
        }
        let mut scratch = Scratch::new(turn.buf, self.tls());
        for _ in 0..READS_PER_TURN {
            if self.leg(from).eof || self.paused(to, turn.budget) || self.gated(from) {
                return Ok(false);
            }
            let (src, dst) = self.direction(from);
            // Owing bytes already, a read may have to be kept whole: make room
            // first, so that a failed allocation stops reading instead of
            // losing bytes already read. (Owing nothing, the hot path, skips this.)
            if dst.owed() > 0 && !dst.reserve(scratch.one_read(), max_pending, turn.budget) {
                warn!(target: words::LOG, "{peer}: out of memory for unsent bytes; reading paused");
                dst.starved = true;
                return Ok(false);
            }
            let before = src.taken();
            let got = match src.receive(&mut scratch, max_pending, turn.budget) {
                Ok(got) => got,
                Err(Broke::Io(e)) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(Broke::Io(e)) if e.kind() == ErrorKind::Interrupted => continue,
                Err(broke) => return Err(Ended::on(from, broke)),
            };
            src.read += got.wire as u64;
            let (data, room) = scratch.data(&got);
            if !data.is_empty() {
                words::piece(turn.lines, from, to, data, before);
                let delivered = dst.deliver(data, room, max_pending, turn.budget);
                delivered.map_err(|b| Ended::on(to, b))?;
            }
            if got.secured || got.end {
                return self.turned(from, got, turn);
            }
            if !drain && short_read_empties_queue(got.wire, got.asked) {
                return Ok(false);
            }
            // A full buffer, all of it taken, after a pipe's worth: a burst,
            // whose rest goes by splice. (Before that, and with small reads
            // such as --read-size 32, every piece is read and can be logged.)
            let burst = got.wire == got.asked && !got.decrypted;
            if burst && src.read >= pipe::CAPACITY as u64 && splice && dst.open_pipe(turn.budget) {
                return self.splice_burst(from, turn);
            }
        }
        trace!("{peer}: {from} made a turn's {READS_PER_TURN} reads, back after the others");
        Ok(true)
    }

    /// A read finished `from`'s TLS handshake, or its input: say so, and pass
    /// its end on. After a handshake the loop comes back for both legs: the
    /// other may be read now, or owes less.
    fn turned(&mut self, from: Side, got: Received, turn: &mut Turn<'_>) -> Result<bool, Ended> {
        let (peer, src) = (self.peer, &mut self.legs[from.index()]);
        if got.secured {
            words::secured(turn.lines, peer, from, src.tls().map(Secure::agreed));
        }
        if got.end {
            trace!("{peer}: {from} sent its FIN");
            src.eof = true;
            let tls_end = src.tls().is_some_and(Secure::peer_closed);
            let how = if tls_end { "close_notify" } else { "FIN" };
            words::no_more_data(turn.lines, from, from.other(), src.taken(), how);
            self.pass_fin(from, turn.budget)?;
        }
        Ok(got.secured)
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
                    words::no_more_data(turn.lines, from, to, src.read, "FIN");
                    self.pass_fin(from, turn.budget)?;
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

    /// `from` sent its FIN: once the other leg has every byte (and, on a TLS
    /// leg, its handshake is done, or never will be: its peer left), pass it
    /// on: its `close_notify` too, if `from` ended with one.
    fn pass_fin(&mut self, from: Side, budget: &mut Budget) -> Result<(), Ended> {
        let (peer, max_pending) = (self.peer, self.max_pending);
        let (src, dst) = self.direction(from);
        if src.eof && !dst.shut && dst.owed() == 0 && (!dst.handshaking() || dst.eof) {
            let clean = src.tls().is_some_and(|t| t.peer_closed());
            trace!("{peer}: {from}'s end passed on (close_notify: {clean})");
            let ended = dst.end_output(clean, max_pending, budget);
            ended.map_err(|b| Ended::on(from.other(), b))?;
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
            let write = leg.to_write() > 0 || (connecting && side == Side::Server);
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
        for leg in &mut self.legs {
            leg.note_delivered();
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
        for leg in &mut self.legs {
            leg.stop();
        }
    }

    fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn moved(&self) -> u64 {
        // Data taken from one leg and no longer owed to the other was written there.
        let delivered = |from: Side| self.leg(from.other()).delivered(self.leg(from).taken());
        Side::BOTH.into_iter().map(delivered).sum()
    }

    fn wire(&self) -> Wire {
        let interest = self.legs.iter().filter_map(Leg::interest).reduce(|a, b| a | b);
        Wire {
            read: self.legs.iter().map(|l| l.read).sum(),
            written: match self.tls() {
                true => self.legs.iter().filter_map(Leg::tls).map(|t| t.sent).sum(),
                // (spliced bytes are never seen: counted as they leave the pipe)
                false => self.moved(),
            },
            owed: self.legs.iter().map(Leg::owed).sum(),
            interest,
            handshake: self.legs.iter().any(Leg::handshaking),
        }
    }

    fn set_up(&self) -> bool {
        self.phase != Phase::Connecting && !self.legs.iter().any(Leg::handshaking)
    }
}
