//! What an echo owes its client: the bytes its socket would not take yet, the
//! bounds on them, and the readiness they make the connection ask for.
//!
//! Written once for both echoes: the plaintext one (`echo.rs`) keeps the
//! client's own bytes here, the TLS one (`tls_echo.rs`) the records it
//! encrypted for the client. Either way the rules are the same:
//!
//! - **Write at once, keep only the rest.** Bytes go straight to the socket;
//!   only what its send buffer will not take (the client reads slowly) is
//!   copied here, so a client that keeps up owns no buffer at all.
//! - **Backpressure.** Owing `--max-pending`, the connection stops reading:
//!   the client's bytes wait in the kernel, its TCP window closes and its own
//!   `send` blocks. Owing anything while all connections together hold
//!   `--max-pending-total` (the [`Budget`]), or when the allocator said no,
//!   it stops too; a client owed nothing is always served.
//! - **Every byte of capacity is charged** to the budget, and refunded.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Write};
use std::net::SocketAddr;

use log::{trace, warn};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::event_loop::{Budget, Closed, Next, Turn};

/// After a burst is sent, a pending buffer larger than this is freed rather
/// than kept: 64 KiB is one full read, so a connection that overflows now and
/// then does not allocate each time, while a slow reader's megabytes go back
/// to the allocator as soon as it catches up.
const KEEP_PENDING_CAPACITY: usize = 64 * 1024;

/// The bytes owed to one client, oldest first, and the bound on them.
#[derive(Debug)]
pub struct Pending {
    /// A ring buffer: writing from the front and appending at the back never
    /// moves a byte, and a client that does not read costs at most
    /// `max` plus one read. Its capacity is charged to the global [`Budget`].
    buf: VecDeque<u8>,
    /// Stop reading while this many bytes are owed (`--max-pending`).
    max: usize,
    /// `buf` could not grow (the allocator said no): read no more until some
    /// of it has been sent.
    starved: bool,
}

impl Pending {
    /// Nothing owed yet, and no buffer.
    pub fn new(max_pending: usize) -> Pending {
        Pending { buf: VecDeque::new(), max: max_pending, starved: false }
    }

    /// How many bytes are owed to the client.
    pub fn owed(&self) -> usize {
        self.buf.len()
    }

    /// Memory held, as charged to the [`Budget`].
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// True while the connection must not read more: it owes `max_pending`,
    /// or it owes anything while the global budget is spent or its buffer
    /// could not grow. A client owed nothing is always served.
    pub fn paused(&self, budget: &Budget) -> bool {
        let owed = self.owed();
        owed >= self.max || (owed > 0 && (self.starved || budget.spent()))
    }

    /// Paused by the global budget alone, with more to read once it has room.
    pub fn waits_for_room(&self, budget: &Budget, read_closed: bool) -> bool {
        budget.spent() && !read_closed && !self.starved && self.owed() < self.max
    }

    /// Owing bytes already, make room for the `extra` bytes a read may add
    /// before reading, so that a failed allocation stops reading instead of
    /// losing bytes already read. False (and reading paused) if the allocator
    /// says no. Owing nothing, the hot path, this does nothing.
    pub fn room_to_read(&mut self, extra: usize, budget: &mut Budget, peer: SocketAddr) -> bool {
        if self.owed() == 0 || self.reserve(extra, budget) {
            return true;
        }
        warn!("{peer}: out of memory for unsent bytes; reading paused");
        self.starved = true;
        false
    }

    /// Write `data` now; keep what the socket will not take. Returns the
    /// bytes written now.
    pub fn send(
        &mut self,
        socket: &mut TcpStream,
        data: &[u8],
        budget: &mut Budget,
        peer: SocketAddr,
    ) -> io::Result<usize> {
        let mut written = 0;
        // Bytes already owed must go first: never write past them.
        if self.owed() == 0 {
            written = write_some(socket, data, peer)?;
        }
        let rest = &data[written..];
        if !rest.is_empty() {
            if !self.reserve(rest.len(), budget) {
                // Only a client owed nothing gets here (the others made room
                // before reading): its bytes cannot be kept, so it ends, alone.
                warn!("{peer}: out of memory for {} unsent bytes: closing", rest.len());
                return Err(ErrorKind::OutOfMemory.into());
            }
            self.buf.extend(rest);
        }
        Ok(written)
    }

    /// Make room for `extra` more bytes, so that appending them allocates
    /// nothing; false if the allocator says no.
    ///
    /// Grows by doubling, as a Vec would, but never past what can be owed
    /// (reading stops at `max_pending`, and one read adds `extra`), nor past
    /// the budget's room by more than `extra`.
    fn reserve(&mut self, extra: usize, budget: &mut Budget) -> bool {
        let (len, capacity) = (self.buf.len(), self.buf.capacity());
        let needed = len.saturating_add(extra);
        if needed <= capacity {
            return true;
        }
        let target = capacity
            .saturating_mul(2)
            .min(self.max.saturating_add(extra))
            .min(capacity.saturating_add(budget.room()))
            .max(needed);
        if self.buf.try_reserve_exact(target - len).is_err()
            && self.buf.try_reserve_exact(extra).is_err()
        {
            return false;
        }
        budget.charge(self.buf.capacity() - capacity);
        true
    }

    /// Write as much of what is owed as the socket takes; returns how much.
    pub fn flush(
        &mut self,
        socket: &mut TcpStream,
        budget: &mut Budget,
        peer: SocketAddr,
    ) -> io::Result<usize> {
        let mut flushed = 0;
        while !self.buf.is_empty() {
            let (front, _) = self.buf.as_slices();
            let len = front.len();
            let n = write_some(socket, front, peer)?;
            self.buf.drain(..n);
            flushed += n;
            if n > 0 {
                self.starved = false; // memory freed up: try reading again
            }
            if n < len {
                break; // the socket is full
            }
        }
        if self.buf.is_empty() {
            self.buf.clear();
            // Keep a small buffer for the next overflow, unless memory is short.
            if self.buf.capacity() > KEEP_PENDING_CAPACITY || budget.spent() {
                budget.refund(self.buf.capacity());
                self.buf = VecDeque::new();
            }
        }
        Ok(flushed)
    }

    /// The readiness a connection needs now: READABLE unless its client is
    /// done sending or it owes `max_pending` (paused by the budget or the
    /// allocator it keeps READABLE, sparing two epoll_ctl calls per pause: an
    /// event then merely finds it still paused), WRITABLE while it owes
    /// anything. `None`: it wants nothing more, it is finished.
    pub fn interest(&self, read_closed: bool) -> Option<Interest> {
        let want_read = !read_closed && self.owed() < self.max;
        match (want_read, self.owed() > 0) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }
}

/// The end of an echo's turn, the same with or without TLS: wait for the
/// budget if it paused reading, ask for the readiness `pending` needs now,
/// and tell the loop what next (`more`: the turn made all its reads).
pub fn end_turn(
    pending: &Pending,
    socket: &mut TcpStream,
    registered: &mut Option<Interest>,
    read_closed: bool,
    peer: SocketAddr,
    turn: &mut Turn<'_>,
    more: bool,
) -> Next {
    // Stopped reading because the budget is spent: no event will say when
    // it is not, so ask the loop to come back then.
    if pending.owed() > 0 && pending.waits_for_room(turn.budget, read_closed) {
        turn.budget.wait(turn.key);
    }
    let wanted = pending.interest(read_closed);
    match settle(socket, registered, wanted, turn.registry, Token(turn.key), peer) {
        Some(why) => Next::Close(why),
        None if more => Next::Again,
        None => Next::Wait,
    }
}

/// After a turn: ask for `wanted` if it is not what `socket` asks for already
/// (`registered`), or say the connection is finished when it wants nothing.
fn settle(
    socket: &mut TcpStream,
    registered: &mut Option<Interest>,
    wanted: Option<Interest>,
    registry: &Registry,
    token: Token,
    peer: SocketAddr,
) -> Option<Closed> {
    // The client closed its side and has every byte back. Dropping the
    // socket closes it, and close(2) with nothing left unread sends our FIN
    // after the last byte: no shutdown(2) needed.
    let Some(wanted) = wanted else { return Some(Closed::PeerClosed) };
    if *registered != Some(wanted) {
        trace!("{peer}: interest now {wanted:?}");
        if let Err(e) = registry.reregister(socket, token, wanted) {
            return Some(Closed::from_error(&e));
        }
        *registered = Some(wanted);
    }
    None
}

/// Write as much of `data` as the socket takes now; return how much it took.
pub fn write_some(socket: &mut TcpStream, data: &[u8], peer: SocketAddr) -> io::Result<usize> {
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
