//! A TLS session on a readiness loop, written once for both sides: the server
//! (`progjar server --tls-cert`) and the client (a stress tool or a relay that
//! speaks TLS on its own loop).
//!
//! rustls's buffered `ServerConnection` keeps its own buffers: what it read,
//! what it decrypted, what it will send. Those queue without bound unless the
//! caller watches them (rustls issue #35), and they stay allocated while a
//! connection idles. Its *unbuffered* API leaves every byte to us, which is
//! how a session here counts every byte it holds and holds none when idle:
//!
//! - **TLS bytes read** go into a buffer the caller lends for one pass (the
//!   loop's one shared read buffer); rustls decrypts whole records in place
//!   there. Only the bytes of a record not complete yet are carried over, in
//!   [`Session`]'s own buffer, which exists only while such bytes wait and
//!   holds at most one record (in the handshake, at most one handshake
//!   message, which rustls bounds at 64 KiB).
//! - **Decrypted data** is handed to the caller record by record (rustls 0.23
//!   copies each record's plaintext out once on its way; the record is then
//!   gone from rustls).
//! - **TLS bytes to send** (a handshake flight, encrypted data, an alert) are
//!   gathered in an [`Out`], a room the caller lends (a loop-wide scratch),
//!   and handed to the caller's [`Transmit`] when it is full or the pass ends:
//!   the echo writes them to its socket at once and keeps only what the socket
//!   would not take, bounded and counted like any unsent bytes.
//!
//! rustls's state machine ([`ConnectionState`]) says what it needs next: bytes
//! to decrypt handed over (`ReadTraffic`), a handshake record to put in the
//! room (`EncodeTlsData`), those records to send (`TransmitTlsData`), more
//! bytes from the peer (`BlockedHandshake`), or nothing: data may be
//! encrypted now (`WriteTraffic`). In readiness terms: a session *wants to
//! read* whenever it is not done, and *wants to write* exactly while its
//! owner holds TLS bytes the socket did not take. A read may need a write
//! first: the handshake answers each flight before the peer sends more.
//!
//! One rule keeps rustls's view of the bytes right: every pass gets the bytes
//! it did not finish with last time, first, unchanged (`discard` counts what
//! it finished with). The carry is exactly those bytes, and a pass never sees
//! a buffer without them; rustls indexes into them while it joins a handshake
//! message split over records.

use std::io::{self, ErrorKind};
use std::mem;
use std::sync::Arc;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::ServerName;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, UnbufferedStatus, WriteTraffic};
use rustls::{ClientConfig, CommonState, ServerConfig};

use super::outgoing::{close_into, encode_into, encrypt_into};
pub use super::outgoing::{Error, Out, Transmit, MAX_FRAGMENT};

/// The largest TLS record rustls accepts on the wire: 16 KiB of data, up to
/// 2 KiB of expansion (TLS 1.2 allows that much), and the 5-byte header. A
/// record can only be decrypted whole, so this is the most a session carries
/// over once the handshake is done.
pub const MAX_RECORD: usize = MAX_FRAGMENT + 2048 + 5;

/// The most bytes of one handshake message rustls joins (its own bound): a
/// session may carry that much, in records, during the handshake.
pub const MAX_HANDSHAKE_MESSAGE: usize = 0xffff;

/// The room for TLS bytes to send is this much larger than the decrypted data
/// of one read: each record's header and tag (under 30 bytes a record).
const ROOM_MARGIN: usize = 4096;

/// Room for TLS bytes read: `read_size` (at least 64 KiB, so that a whole
/// handshake message fits) after a carried record. So a read always asks for
/// `read_size` once the handshake is done.
fn incoming_size(read_size: usize) -> usize {
    read_size.max(MAX_HANDSHAKE_MESSAGE + 1) + MAX_RECORD
}

/// The size of a loop's one shared buffer when its connections speak TLS and
/// read `read_size` bytes at a time: [`split_scratch`]'s three parts.
pub fn scratch_size(read_size: usize) -> usize {
    3 * incoming_size(read_size) + ROOM_MARGIN
}

/// The loop's one buffer ([`scratch_size`] long), split: TLS bytes read
/// (after a carried record), their decrypted data (never more than the TLS
/// bytes it came in), and the room TLS bytes to send are gathered in. Every
/// TLS connection on the loop uses it in turn, so none owns a buffer.
pub fn split_scratch(buf: &mut [u8]) -> (&mut [u8], &mut [u8], &mut [u8]) {
    let part = buf.len().saturating_sub(ROOM_MARGIN) / 3;
    let (incoming, rest) = buf.split_at_mut(part);
    let (plain, room) = rest.split_at_mut(part);
    (incoming, plain, room)
}

/// What a session needs from rustls's two connection types: one pass of the
/// state machine over a buffer, and the state every side shares.
pub trait Side: Send {
    /// rustls's data for this side.
    type Data;
    /// One step of rustls's state machine over `incoming`.
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
    /// Version, cipher suite, whether the handshake is done.
    fn common(&self) -> &CommonState;
}

impl Side for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn common(&self) -> &CommonState {
        self
    }
}

impl Side for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn common(&self) -> &CommonState {
        self
    }
}

/// What a pass of the state machine is for once rustls lets data be sent.
#[derive(Debug, Clone, Copy)]
enum Task<'d> {
    /// Only to take in what was read.
    Read,
    /// To encrypt this data.
    Send(&'d [u8]),
    /// To send `close_notify`.
    Close,
}

/// What a session knows beside rustls.
#[derive(Debug, Default, Clone, Copy)]
struct Flags {
    /// The peer's `close_notify` came: it sends nothing more.
    peer_closed: bool,
    /// Our `close_notify` is gathered or sent.
    close_sent: bool,
    /// rustls failed: it must not be asked again (it would read the bad bytes
    /// again, and its debug checks panic on a second alert).
    failed: bool,
}

/// One TLS connection's state: rustls's, and the bytes carried to the next pass.
pub struct Session<S> {
    conn: S,
    /// TLS bytes rustls has not finished with: a record not complete yet (or,
    /// in the handshake, the records of a message not complete yet). No
    /// allocation while nothing waits.
    carry: Vec<u8>,
    flags: Flags,
    /// The first byte the peer sent: a TLS peer's is 22 (a handshake record).
    first: Option<u8>,
}

impl<S: Side> std::fmt::Debug for Session<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("handshaking", &self.handshaking())
            .field("carried", &self.carry.len())
            .field("flags", &self.flags)
            .finish()
    }
}

/// The server's side of a session.
pub type ServerSession = Session<UnbufferedServerConnection>;
/// The client's side of a session.
pub type ClientSession = Session<UnbufferedClientConnection>;

impl ServerSession {
    /// A session for a client that just connected.
    pub fn server(config: Arc<ServerConfig>) -> Result<ServerSession, rustls::Error> {
        Ok(Session::new(UnbufferedServerConnection::new(config)?))
    }
}

impl ClientSession {
    /// A session to a server that should be `name`; [`Session::flush`] sends its hello.
    pub fn client(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<ClientSession, rustls::Error> {
        Ok(Session::new(UnbufferedClientConnection::new(config, name)?))
    }
}

impl<S: Side> Session<S> {
    fn new(conn: S) -> Session<S> {
        Session { conn, carry: Vec::new(), flags: Flags::default(), first: None }
    }

    /// Version, cipher suite, key exchange, for the log.
    pub fn common(&self) -> &CommonState {
        self.conn.common()
    }

    /// True until the handshake is done.
    pub fn handshaking(&self) -> bool {
        self.conn.common().is_handshaking()
    }

    /// The peer sent `close_notify`: it sends nothing more.
    pub fn peer_closed(&self) -> bool {
        self.flags.peer_closed
    }

    /// Our `close_notify` is on its way.
    pub fn close_sent(&self) -> bool {
        self.flags.close_sent
    }

    /// The peer's first byte, if it sent any (for saying what it was, when
    /// it was not TLS).
    pub fn first_byte(&self) -> Option<u8> {
        self.first
    }

    /// Bytes of memory held for the bytes carried over (0 while none wait).
    pub fn held(&self) -> usize {
        self.carry.capacity()
    }

    /// Bytes carried over now.
    pub fn carried(&self) -> usize {
        self.carry.len()
    }

    /// Put the bytes carried over at the front of `buf` (which must be larger)
    /// and return how many: read the peer's next bytes after them, then hand
    /// all of it to [`Session::receive`]. The carry stays until then, so a
    /// read that finds nothing loses nothing.
    pub fn unload(&self, buf: &mut [u8]) -> usize {
        let n = self.carry.len();
        buf[..n].copy_from_slice(&self.carry);
        n
    }

    /// Take in `buf` (what [`Session::unload`] put first, then the bytes just
    /// read): each decrypted record goes to `received`, whatever must be sent
    /// (a handshake flight, an alert) to `out`; the bytes of a record not
    /// complete yet are carried over.
    pub fn receive<T: Transmit>(
        &mut self,
        buf: &mut [u8],
        received: &mut dyn FnMut(&[u8]),
        out: &mut Out<'_, T>,
    ) -> Result<(), Error> {
        if self.first.is_none() {
            self.first = buf.first().copied();
        }
        let (done, _) = drive(&mut self.conn, buf, &mut self.flags, Task::Read, received, out)?;
        self.keep(&buf[done..])
    }

    /// [`Session::receive`], with the decrypted data gathered at the front of
    /// `plain`: returns its length. Data never outgrows the TLS bytes it came
    /// in, so a `plain` as long as `buf` always has room; a shorter one that
    /// overflows is [`Error::TooLarge`].
    pub fn receive_into<T: Transmit>(
        &mut self,
        buf: &mut [u8],
        plain: &mut [u8],
        out: &mut Out<'_, T>,
    ) -> Result<usize, Error> {
        let (mut len, mut overflow) = (0, false);
        let mut gather = |data: &[u8]| match plain.get_mut(len..len + data.len()) {
            Some(to) => {
                to.copy_from_slice(data);
                len += data.len();
            }
            None => overflow = true,
        };
        self.receive(buf, &mut gather, out)?;
        if overflow {
            return Err(Error::TooLarge);
        }
        Ok(len)
    }

    /// Encrypt `data` into `out`; false (nothing sent) while the handshake
    /// does not let data be sent yet.
    pub fn send<T: Transmit>(&mut self, data: &[u8], out: &mut Out<'_, T>) -> Result<bool, Error> {
        self.on_carry(Task::Send(data), out)
    }

    /// Send `close_notify` ("no more data from me") after what was sent;
    /// false if the handshake is not done (there is no key to send it with).
    pub fn close<T: Transmit>(&mut self, out: &mut Out<'_, T>) -> Result<bool, Error> {
        if self.flags.close_sent {
            return Ok(true);
        }
        self.on_carry(Task::Close, out)
    }

    /// Gather whatever rustls has to send without new bytes from the peer: a
    /// client's hello, to begin.
    pub fn flush<T: Transmit>(&mut self, out: &mut Out<'_, T>) -> Result<(), Error> {
        self.on_carry(Task::Read, out).map(|_| ())
    }

    /// A pass over the carried bytes alone, to reach the state where data
    /// may be sent. Those bytes hold no whole record (a pass stops only when
    /// none is left), so nothing is decrypted here.
    fn on_carry<T: Transmit>(
        &mut self,
        task: Task<'_>,
        out: &mut Out<'_, T>,
    ) -> Result<bool, Error> {
        let mut carry = mem::take(&mut self.carry);
        let mut stray = 0;
        let result = drive(
            &mut self.conn,
            &mut carry,
            &mut self.flags,
            task,
            &mut |d| stray += d.len(),
            out,
        );
        if let Ok((done, _)) = result {
            carry.drain(..done);
        }
        self.carry = if carry.is_empty() { Vec::new() } else { carry };
        match result {
            Ok(_) if stray > 0 => Err(Error::Tls(rustls::Error::General(
                "a TLS record was decrypted outside a read".into(),
            ))),
            Ok((_, task_done)) => Ok(task_done),
            Err(e) => Err(e),
        }
    }

    /// Carry `tail` over to the next pass, in a buffer of its size (none when
    /// it is empty, or when the peer has closed and nothing more counts).
    fn keep(&mut self, tail: &[u8]) -> Result<(), Error> {
        if tail.is_empty() || self.flags.peer_closed {
            self.carry = Vec::new();
            return Ok(());
        }
        if tail.len() > MAX_HANDSHAKE_MESSAGE + MAX_RECORD {
            return Err(Error::TooLarge);
        }
        let mut carry = Vec::new();
        carry.try_reserve_exact(tail.len()).map_err(|_| io::Error::from(ErrorKind::OutOfMemory))?;
        carry.extend_from_slice(tail);
        self.carry = carry;
        Ok(())
    }
}

/// Run rustls's state machine over `buf` until it needs more bytes from the
/// peer, or lets data be sent (and `task` is done then), or is closed.
/// Returns how many bytes of `buf` it finished with, and whether `task` was done.
fn drive<S: Side, T: Transmit>(
    conn: &mut S,
    buf: &mut [u8],
    flags: &mut Flags,
    task: Task<'_>,
    received: &mut dyn FnMut(&[u8]),
    out: &mut Out<'_, T>,
) -> Result<(usize, bool), Error> {
    if flags.failed {
        return Err(Error::Tls(rustls::Error::General("this TLS session failed already".into())));
    }
    let mut done = 0;
    loop {
        let UnbufferedStatus { mut discard, state } = conn.process(&mut buf[done..]);
        let state = match state {
            Ok(state) => state,
            Err(e) => {
                flags.failed = true;
                send_alert(conn, &mut buf[done + discard..], out);
                return Err(Error::Tls(e));
            }
        };
        let stop = match state {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record = record.map_err(Error::Tls)?;
                    discard += record.discard;
                    received(record.payload);
                }
                None
            }
            ConnectionState::EncodeTlsData(mut encode) => {
                encode_into(&mut encode, out)?;
                None
            }
            // Gathered in `out`: it leaves when `out` is full or the pass ends.
            ConnectionState::TransmitTlsData(transmit) => {
                transmit.done();
                None
            }
            ConnectionState::PeerClosed => {
                flags.peer_closed = true;
                None
            }
            ConnectionState::WriteTraffic(mut write) => {
                Some(perform(&mut write, task, flags, out)?)
            }
            ConnectionState::BlockedHandshake | ConnectionState::Closed => Some(false),
            // Early data is never enabled, and rustls may add states.
            other => {
                let what = format!("unexpected TLS state {other:?}");
                return Err(Error::Tls(rustls::Error::General(what)));
            }
        };
        done += discard;
        if let Some(task_done) = stop {
            return Ok((done, task_done));
        }
    }
}

/// Data may be sent now: do `task` (nothing more to do for a read). True: done.
fn perform<D, T: Transmit>(
    write: &mut WriteTraffic<'_, D>,
    task: Task<'_>,
    flags: &mut Flags,
    out: &mut Out<'_, T>,
) -> Result<bool, Error> {
    match task {
        Task::Read => {}
        Task::Send(data) => encrypt_into(write, data, out)?,
        Task::Close => {
            close_into(write, out)?;
            flags.close_sent = true;
        }
    }
    Ok(true)
}

/// rustls failed and queued an alert saying why: put it in `out`. Only what
/// is queued is taken: another pass would read the bad bytes again.
fn send_alert<S: Side, T: Transmit>(conn: &mut S, rest: &mut [u8], out: &mut Out<'_, T>) {
    // An alert is one record; the loop is bounded anyway.
    for _ in 0..4 {
        if !conn.common().wants_write() {
            return;
        }
        match conn.process(rest).state {
            Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                if encode_into(&mut encode, out).is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
