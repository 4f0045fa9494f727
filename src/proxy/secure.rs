//! A leg that speaks TLS: the *active* man in the middle (`--intercept-cert`).
//!
//! The plain relay moves a TLS client's records from one socket to the other
//! and reads nothing of them. Intercepting, the proxy ends the client's TLS
//! itself: on the client's leg it is the server (a [`ServerSession`] with the
//! proxy's own certificate), on the realserver's leg a client (a
//! [`ClientSession`] that checks nothing). Each leg's records are decrypted
//! there, the plaintext is logged like the plain relay's pieces, and it is
//! encrypted again for the other leg. A client that checks the certificate
//! it is shown refuses the proxy's; one that does not (`--insecure`, the
//! course's `CERT_NONE`) has just handed over everything it sends.
//!
//! Both sessions are `tls/session.rs`'s, the TLS echo's own, on the loop's one
//! shared buffer ([`session::split_scratch`]): a leg holds no buffer while its
//! bytes flow, and every byte it does hold is charged to the loop's budget and
//! counted in the connection's `held`:
//!
//! - a record not complete yet: the session's carry (at most one record; in
//!   the handshake one handshake message);
//! - TLS bytes its socket did not take: the leg's unsent bytes, as on a plain leg;
//! - plaintext from the other leg that cannot be encrypted yet because this
//!   leg's handshake is not done: [`Secure`]'s `waiting` (at most one read's:
//!   the relay stops reading the other leg while it holds any).

use std::io::{self, ErrorKind, Read};

use mio::net::TcpStream;
use rustls::CommonState;

use super::leg::{send_into, write_some};
use super::unsent::Unsent;
use crate::event_loop::Budget;
use crate::tls::session::{self, ClientSession, Out, ServerSession, Transmit};
use crate::tls::{client_failed, sentence, CertInfo};

/// A leg's session, in the role the proxy plays on it.
#[derive(Debug)]
pub enum Session {
    /// On the client's leg the proxy is the server, with its own certificate.
    Server(ServerSession),
    /// On the realserver's leg it is a client that checks nothing.
    Client(ClientSession),
}

/// The same call on either role's session.
macro_rules! either {
    ($session:expr, $s:ident => $call:expr) => {
        match $session {
            Session::Server($s) => $call,
            Session::Client($s) => $call,
        }
    };
}

/// Where a session's TLS bytes go: the leg's socket now, what it will not
/// take kept in the leg's unsent bytes (bounded and charged like any).
#[derive(Debug)]
pub struct Io<'a> {
    /// The leg's socket.
    pub socket: &'a mut TcpStream,
    /// Its bytes not written yet.
    pub unsent: &'a mut Unsent,
    /// `--max-pending`.
    pub max_pending: usize,
    /// The loop's budget.
    pub budget: &'a mut Budget,
    /// TLS bytes written to the socket through it (for `--record`).
    pub sent: usize,
}

impl Transmit for Io<'_> {
    fn transmit(&mut self, tls: &[u8]) -> io::Result<()> {
        self.sent += send_into(self.socket, self.unsent, tls, self.max_pending, self.budget)?;
        Ok(())
    }
}

/// Where `close_notify` goes when the proxy stops: to the socket, or nowhere.
struct Direct<'a>(&'a mut TcpStream);

impl Transmit for Direct<'_> {
    fn transmit(&mut self, tls: &[u8]) -> io::Result<()> {
        write_some(self.0, tls).map(|_| ())
    }
}

/// The loop's shared buffer as one read of a leg uses it.
#[derive(Debug)]
pub struct Scratch<'a> {
    /// Where the socket's bytes are read (after a carried record, on a TLS leg).
    pub input: &'a mut [u8],
    /// Their plaintext (TLS legs only; empty otherwise).
    pub plain: &'a mut [u8],
    /// Where TLS bytes to send are gathered (TLS legs only; empty otherwise).
    pub room: &'a mut [u8],
}

impl<'a> Scratch<'a> {
    /// The buffer as a plain relay uses it (all of it for reads), or split in
    /// three for TLS.
    pub fn new(buf: &'a mut [u8], tls: bool) -> Scratch<'a> {
        if tls {
            let (input, plain, room) = session::split_scratch(buf);
            Scratch { input, plain, room }
        } else {
            Scratch { input: buf, plain: Default::default(), room: Default::default() }
        }
    }

    /// The most bytes one read can make the other leg owe: a plain read, or
    /// a TLS read's plaintext encrypted again.
    pub fn one_read(&self) -> usize {
        self.input.len().max(self.room.len())
    }

    /// What a read brought for the other leg, and the room to encrypt it in.
    pub fn data(&mut self, got: &Received) -> (&[u8], &mut [u8]) {
        let from = if got.decrypted { &*self.plain } else { &*self.input };
        (&from[..got.data], &mut *self.room)
    }
}

/// What one read of a leg brought.
#[derive(Debug, Clone, Copy, Default)]
pub struct Received {
    /// Bytes read from the socket (TLS bytes on a TLS leg); 0 at its FIN.
    pub wire: usize,
    /// Bytes the read asked for.
    pub asked: usize,
    /// Data for the other leg, in [`Scratch::data`].
    pub data: usize,
    /// The data is plaintext decrypted (in `plain`), not the bytes read.
    pub decrypted: bool,
    /// This read finished the leg's TLS handshake.
    pub secured: bool,
    /// Its peer sends nothing more: its FIN, or its `close_notify`.
    pub end: bool,
}

impl Received {
    /// The peer's FIN, read.
    pub const END: Received =
        Received { wire: 0, asked: 0, data: 0, decrypted: false, secured: false, end: true };

    /// `n` bytes read by a read that asked for `asked`: the data itself.
    pub fn plain(n: usize, asked: usize) -> Received {
        Received { wire: n, asked, data: n, ..Received::default() }
    }
}

/// Why a leg's TLS failed: a sentence for the log, and the reason the
/// connection's close line gives.
#[derive(Debug, Clone)]
pub struct Failed {
    /// The whole story, for a line of its own (the realserver's leg); `None`
    /// when the close line's reason says it all (the client's).
    pub why: Option<String>,
    /// The close line's reason.
    pub reason: &'static str,
}

impl Failed {
    /// The client's TLS failed: its close line says why.
    fn client(reason: &'static str) -> Failed {
        Failed { why: None, reason }
    }

    /// The realserver's TLS failed: a line says why, the client's close line that it did.
    fn server(why: String) -> Failed {
        Failed { why: Some(why), reason: "its realserver's TLS failed" }
    }

    /// A leg's handshake did not finish within the setup timeout.
    pub fn timed_out(client: bool) -> Failed {
        match client {
            true => Failed::client("its TLS handshake did not finish within --connect-timeout"),
            false => Failed::server(
                "the realserver's TLS handshake did not finish within --connect-timeout".into(),
            ),
        }
    }
}

/// Why a leg failed.
#[derive(Debug)]
pub enum Broke {
    /// Its socket: a reset, a peer gone, no memory (`WouldBlock`: not now).
    Io(io::Error),
    /// Its TLS.
    Tls(Failed),
}

impl From<io::Error> for Broke {
    fn from(e: io::Error) -> Broke {
        Broke::Io(e)
    }
}

/// A leg's TLS: its session and what the relay keeps about it.
#[derive(Debug)]
pub struct Secure {
    session: Session,
    /// Bytes asked of each read (`--read-size`).
    read_size: usize,
    /// Plaintext from the other leg waiting for this leg's handshake.
    waiting: Unsent,
    /// What the session's carry has been charged to the budget.
    charged: usize,
    /// Plaintext taken from this leg (decrypted) so far.
    pub taken: u64,
    /// Plaintext given to this leg (to encrypt) so far...
    pub given: u64,
    /// ...and `given` when this leg last owed nothing: every byte of it left.
    pub delivered: u64,
    /// TLS bytes written to the socket so far (for `--record`).
    pub sent: u64,
}

impl Secure {
    /// A leg's TLS in the role `session` plays, reading `read_size` bytes at a time.
    pub fn new(session: Session, read_size: usize) -> Secure {
        let read_size = read_size.max(1);
        Secure {
            session,
            read_size,
            waiting: Unsent::default(),
            charged: 0,
            taken: 0,
            given: 0,
            delivered: 0,
            sent: 0,
        }
    }

    /// True until the handshake is done.
    pub fn handshaking(&self) -> bool {
        either!(&self.session, s => s.handshaking())
    }

    /// Plaintext waiting for the handshake.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Memory held (the carry, the waiting plaintext), as charged to the budget.
    pub fn held(&self) -> usize {
        self.charged + self.waiting.capacity()
    }

    /// Version, cipher suite, certificates: for the log.
    pub fn common(&self) -> &CommonState {
        either!(&self.session, s => s.common())
    }

    /// Whether the peer ended its input with `close_notify` (not a bare FIN).
    pub fn peer_closed(&self) -> bool {
        either!(&self.session, s => s.peer_closed())
    }

    /// The proxy's role on this leg is the client's (the realserver's leg).
    fn is_client_role(&self) -> bool {
        matches!(self.session, Session::Client(_))
    }

    /// Begin the handshake (the realserver's leg): our hello.
    pub fn start(&mut self, io: Io<'_>, room: &mut [u8]) -> Result<(), Broke> {
        let mut out = Out::new(room, io);
        let flushed = either!(&mut self.session, s => s.flush(&mut out));
        self.settle(flushed, out)
    }

    /// Read the socket once and take its TLS bytes in: what must be answered
    /// (a handshake flight, an alert) goes to the socket, the plaintext to
    /// `scratch.plain`. `read_before`: TLS bytes read before this read.
    pub fn receive(
        &mut self,
        io: Io<'_>,
        scratch: &mut Scratch<'_>,
        read_before: u64,
    ) -> Result<Received, Broke> {
        let carried = either!(&self.session, s => s.unload(scratch.input));
        let asked = self.read_size.min(scratch.input.len() - carried);
        let n = match io.socket.read(&mut scratch.input[carried..carried + asked]) {
            Ok(0) => return self.end_of_input(carried, read_before).map(|()| Received::END),
            Ok(n) => n,
            Err(e) => return Err(Broke::Io(e)),
        };
        let handshaking = self.handshaking();
        let mut out = Out::new(&mut *scratch.room, io);
        let tls = &mut scratch.input[..carried + n];
        let plain = &mut *scratch.plain;
        let len = match either!(&mut self.session, s => s.receive_into(tls, plain, &mut out)) {
            Ok(len) => len,
            Err(e) => {
                // The alert saying why is gathered in `out`: send it, then fail.
                let _ = out.finish();
                return Err(self.failed(e));
            }
        };
        let mut io = out.finish()?;
        self.charge(&mut io);
        let secured = handshaking && !self.handshaking();
        if secured {
            io = self.release(io, scratch.room)?;
        }
        self.sent += io.sent as u64;
        self.taken += len as u64;
        let end = self.peer_closed();
        Ok(Received { wire: n, asked, data: len, decrypted: true, secured, end })
    }

    /// The peer's FIN: the end of its input, or of a handshake or a record it
    /// had not finished.
    fn end_of_input(&self, carried: usize, read_before: u64) -> Result<(), Broke> {
        let realserver = self.is_client_role();
        let failed = match (self.handshaking(), read_before > 0, carried > 0) {
            // A client that connected and left without a word (a port check).
            (true, false, _) if !realserver => return Ok(()),
            (true, false, _) => Failed::server(
                "the realserver closed the connection without answering our TLS hello: does it \
                 speak TLS?"
                    .into(),
            ),
            (true, true, _) if !realserver => {
                Failed::client("it closed the connection in the middle of the TLS handshake")
            }
            (true, true, _) => Failed::server(
                "the realserver closed the connection in the middle of the TLS handshake".into(),
            ),
            (false, _, true) if !realserver => {
                Failed::client("its connection ended in the middle of a TLS record")
            }
            (false, _, true) => Failed::server(
                "the realserver's connection ended in the middle of a TLS record".into(),
            ),
            // A FIN after a whole record (Python's ssl closes without close_notify).
            (false, _, false) => return Ok(()),
        };
        Err(Broke::Tls(failed))
    }

    /// Encrypt `data` (plaintext from the other leg) into this leg, or keep
    /// it while this leg's handshake is not done.
    pub fn deliver(&mut self, data: &[u8], io: Io<'_>, room: &mut [u8]) -> Result<(), Broke> {
        self.given += data.len() as u64;
        if self.handshaking() || !self.waiting.is_empty() {
            if !self.waiting.reserve(data.len(), io.max_pending, io.budget) {
                return Err(Broke::Io(ErrorKind::OutOfMemory.into()));
            }
            self.waiting.push(data);
            return Ok(());
        }
        let mut out = Out::new(room, io);
        let sent = either!(&mut self.session, s => s.send(data, &mut out));
        self.settle(sent, out)
    }

    /// The handshake is done: encrypt what waited for it, oldest first.
    fn release<'a>(&mut self, mut io: Io<'a>, room: &mut [u8]) -> Result<Io<'a>, Broke> {
        while !self.waiting.is_empty() {
            let front = self.waiting.front();
            let n = front.len();
            let mut out = Out::new(&mut *room, io);
            let sent = either!(&mut self.session, s => s.send(front, &mut out));
            if let Err(e) = sent {
                let _ = out.finish();
                return Err(self.failed(e));
            }
            io = out.finish()?;
            self.waiting.consume(n, io.budget);
        }
        self.charge(&mut io);
        Ok(io)
    }

    /// Send `close_notify` ("no more data from me") after what was sent.
    pub fn close(&mut self, io: Io<'_>) -> Result<(), Broke> {
        // One alert record: 24 bytes.
        let mut room = [0; 256];
        let mut out = Out::new(&mut room, io);
        let closed = either!(&mut self.session, s => s.close(&mut out));
        self.settle(closed, out)
    }

    /// The proxy stops: `close_notify` straight to the socket (if the
    /// handshake is done), whatever it takes of it.
    pub fn close_now(&mut self, socket: &mut TcpStream) {
        if !self.handshaking() {
            let mut room = [0; 256];
            let mut out = Out::new(&mut room, Direct(socket));
            if either!(&mut self.session, s => s.close(&mut out)).is_ok() {
                let _ = out.finish();
            }
        }
    }

    /// After a session call that gathered TLS bytes in `out`: send them,
    /// charge what the carry became, or say why the session failed.
    fn settle<R>(
        &mut self,
        result: Result<R, session::Error>,
        out: Out<'_, Io<'_>>,
    ) -> Result<(), Broke> {
        match result {
            Ok(_) => {
                let mut io = out.finish()?;
                self.charge(&mut io);
                self.sent += io.sent as u64;
                Ok(())
            }
            Err(e) => {
                let _ = out.finish();
                Err(self.failed(e))
            }
        }
    }

    /// The carry changed: charge or refund the difference.
    fn charge(&mut self, io: &mut Io<'_>) {
        let budget = &mut *io.budget;
        let held = either!(&self.session, s => s.held());
        budget.charge(held.saturating_sub(self.charged));
        budget.refund(self.charged.saturating_sub(held));
        self.charged = held;
    }

    /// The session failed: why, in the words of this leg's side.
    fn failed(&self, e: session::Error) -> Broke {
        let failed = match (e, &self.session) {
            (session::Error::Io(e), _) => return Broke::Io(e),
            (session::Error::TooLarge, Session::Server(_)) => {
                Failed::client("it sent a TLS message larger than 64 KiB")
            }
            (session::Error::TooLarge, Session::Client(_)) => {
                Failed::server("the realserver sent a TLS message larger than 64 KiB".into())
            }
            (session::Error::Tls(e), Session::Server(s)) => {
                Failed::client(client_failed(&e, s.first_byte(), s.handshaking()))
            }
            (session::Error::Tls(e), Session::Client(_)) => Failed::server(realserver_failed(&e)),
        };
        Broke::Tls(failed)
    }

    /// What the handshake agreed on, for the log: `TLS 1.3, TLS13_AES_128_GCM_SHA256`,
    /// and on the realserver's leg what its (unchecked) certificate says.
    pub fn agreed(&self) -> String {
        let common = self.common();
        let version = match common.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_string(),
            other => format!("{other:?}"),
        };
        let suite = common.negotiated_cipher_suite().map(|s| s.suite());
        let suite = suite.map_or_else(|| "?".to_string(), |s| format!("{s:?}"));
        if !self.is_client_role() {
            return format!("{version}, {suite}");
        }
        let leaf = common.peer_certificates().and_then(|c| c.first()).and_then(CertInfo::parse);
        match leaf {
            Some(cert) => format!(
                "{version}, {suite}; its certificate, not checked: {}, issued by {}",
                cert.subject, cert.issuer
            ),
            None => format!("{version}, {suite}"),
        }
    }
}

/// Why the realserver's TLS failed, in the words a client would use
/// (`tls::sentence`), unless the proxy has better ones.
fn realserver_failed(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InappropriateHandshakeMessage { got_type, .. }
            if format!("{got_type:?}") == "ClientHello" =>
        {
            "the realserver sent our own TLS hello back: it is a plaintext server (relay it \
             without --intercept-cert)"
                .into()
        }
        _ => sentence(e),
    }
}
