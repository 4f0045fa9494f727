//! `--tls`: one connection's TLS, on the server's own session code
//! (`progjar::tls::session`, its client role), and what all connections share.
//!
//! A connection's bytes go through the session the way the server's do
//! (docs/tls.md, "TLS on the readiness loop"), with the loop-wide buffers here
//! in [`TlsShared`]:
//!
//! - **TLS bytes read** land in `incoming`, after the bytes of a record not
//!   complete at the last read (the session's carry, a buffer of its own only
//!   while such bytes wait); rustls decrypts them in place and each record's
//!   data is copied once into the loop's plaintext buffer, where `conn.rs`
//!   checks it against the pattern exactly as it checks a plaintext read.
//! - **TLS bytes to send** (the hello, the last handshake flight, the
//!   pattern encrypted, `close_notify`) are gathered in `room` and written at
//!   once. Only what the socket will not take is kept, in the connection's
//!   `unsent`, and no more is encrypted until it has left: so a connection
//!   holds at most one write's records (64 KiB of data and their headers)
//!   beyond rustls's own state, and nothing at all while it keeps up.
//!
//! A connection that keeps up, or idles, thus holds rustls's state (keys,
//! sequence numbers: a few KB) and no buffer, which is how `-c 10000 --tls`
//! fits in the memory and the open-file limit of a plaintext run.

use std::io::{self, ErrorKind, Read, Write};

use mio::net::TcpStream;
use progjar::tls::session::{self, ClientSession, Out, Transmit};
use progjar::tls::session::{MAX_HANDSHAKE_MESSAGE, MAX_RECORD};
use progjar::tls::{self as ptls, Agreed, TlsTarget};

/// The room for TLS bytes to send holds the records of one write of data
/// (`WRITE_CHUNK`) and their headers and tags (under 30 bytes a record).
pub const ROOM_MARGIN: usize = 4096;

/// What every TLS connection of the run shares: the settings, the loop's
/// buffers, and what the handshakes agreed.
pub struct TlsShared {
    /// The server's TLS: the rustls settings and the name to check.
    pub target: TlsTarget,
    /// Where TLS bytes are read: a carried record (or, in the handshake, a
    /// carried handshake message: rustls joins at most 64 KiB), then one read.
    pub incoming: Box<[u8]>,
    /// TLS bytes asked of one read (as many as a plaintext read asks).
    read_chunk: usize,
    /// Where TLS bytes to send are gathered.
    pub room: Box<[u8]>,
    /// The handshakes so far.
    pub tally: Tally,
}

impl TlsShared {
    /// The shared state for connections to `target` (whose certificate is
    /// `checked`, or not), which read at most `read_chunk` bytes at a time and
    /// write at most `write_chunk` bytes of data at a time.
    pub fn new(target: TlsTarget, checked: bool, read_chunk: usize, write_chunk: usize) -> Self {
        let incoming = read_chunk.max(MAX_HANDSHAKE_MESSAGE + 1) + MAX_RECORD;
        TlsShared {
            target,
            incoming: vec![0; incoming].into_boxed_slice(),
            read_chunk,
            room: vec![0; write_chunk + ROOM_MARGIN].into_boxed_slice(),
            tally: Tally { checked, ..Tally::default() },
        }
    }
}

/// The run's handshakes: how many, and what they agreed on.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Handshakes done.
    pub handshakes: u64,
    /// What the first one agreed on.
    pub agreed: Option<Agreed>,
    /// Handshakes that agreed on something else than the first.
    pub other: u64,
    /// The certificate was checked (`--ca`), not taken as it is (`--insecure`).
    pub checked: bool,
}

impl Tally {
    /// One more handshake done, which agreed on `agreed`.
    fn count(&mut self, agreed: Agreed) {
        self.handshakes += 1;
        match self.agreed {
            None => self.agreed = Some(agreed),
            Some(first) if first != agreed => self.other += 1,
            Some(_) => {}
        }
    }
}

/// Why a connection's TLS failed.
#[derive(Debug)]
pub enum TlsError {
    /// rustls refused (a certificate, an alert, bytes that are not TLS), in
    /// one sentence (`progjar::tls::sentence` for a handshake).
    Tls(String),
    /// The socket failed.
    Io(io::Error),
    /// A record or handshake message larger than rustls takes.
    TooLarge,
}

impl TlsError {
    /// A session's error, in words: `handshaking` says whether it broke the
    /// handshake (whose errors have their sentences) or the data after it.
    fn of(e: session::Error, handshaking: bool) -> TlsError {
        match e {
            session::Error::Tls(e) if handshaking => TlsError::Tls(ptls::sentence(&e)),
            session::Error::Tls(e) => TlsError::Tls(format!("TLS failed after the handshake: {e}")),
            session::Error::Io(e) => TlsError::Io(e),
            session::Error::TooLarge => TlsError::TooLarge,
        }
    }
}

/// What one read brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Got {
    /// `got` TLS bytes of the `asked`, holding `plain` bytes of data (now at
    /// the front of the plaintext buffer); 0 when they held only handshake
    /// messages or part of a record.
    Data {
        /// Bytes of data decrypted.
        plain: usize,
        /// TLS bytes read.
        got: usize,
        /// TLS bytes asked for.
        asked: usize,
    },
    /// Nothing to read now.
    Empty,
    /// The server's FIN; `cut` when it came in the middle of a record.
    Eof {
        /// The stream ended inside a record.
        cut: bool,
    },
}

/// One connection's TLS: its session, and the TLS bytes its socket did not take.
pub struct Tls {
    session: ClientSession,
    /// TLS bytes to send that the socket would not take yet, in order: no
    /// allocation while none wait.
    unsent: Vec<u8>,
}

impl Tls {
    /// A session to `shared`'s server, its hello written on `stream`.
    pub fn start(shared: &mut TlsShared, stream: &mut TcpStream) -> Result<Tls, TlsError> {
        let session =
            shared.target.session().map_err(|e| TlsError::Tls(format!("cannot start TLS: {e}")))?;
        let mut tls = Tls { session, unsent: Vec::new() };
        let mut out = Out::new(&mut shared.room, ToSocket { stream, unsent: &mut tls.unsent });
        let flushed = tls.session.flush(&mut out);
        let finished = out.finish();
        flushed.map_err(|e| TlsError::of(e, true))?;
        finished.map_err(TlsError::Io)?;
        Ok(tls)
    }

    /// True until the handshake is done.
    pub fn handshaking(&self) -> bool {
        self.session.handshaking()
    }

    /// The server's `close_notify` came: it sends nothing more.
    pub fn peer_closed(&self) -> bool {
        self.session.peer_closed()
    }

    /// TLS bytes wait for room in the socket: encrypt nothing more until they left.
    pub fn blocked(&self) -> bool {
        !self.unsent.is_empty()
    }

    /// The handshake is done: count it, and what it agreed on, in `tally`.
    pub fn count(&self, tally: &mut Tally) {
        tally.count(Agreed::of(self.session.common()));
    }

    /// Write what the socket did not take before; the buffer goes once empty.
    pub fn flush(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        if self.unsent.is_empty() {
            return Ok(());
        }
        let n = write_some(stream, &self.unsent)?;
        if n == self.unsent.len() {
            self.unsent = Vec::new();
        } else {
            self.unsent.drain(..n);
        }
        Ok(())
    }

    /// Read once from `stream` and take the TLS bytes in: data decrypted goes
    /// to the front of `plain` (as long as `shared.incoming`), whatever the
    /// session must answer (a handshake flight, an alert) to the socket.
    pub fn read(
        &mut self,
        stream: &mut TcpStream,
        shared: &mut TlsShared,
        plain: &mut [u8],
    ) -> Result<Got, TlsError> {
        let carried = self.session.unload(&mut shared.incoming);
        let asked = shared.read_chunk.min(shared.incoming.len() - carried);
        let got = loop {
            match stream.read(&mut shared.incoming[carried..carried + asked]) {
                Ok(0) => return Ok(Got::Eof { cut: carried > 0 }),
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Got::Empty),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(TlsError::Io(e)),
            }
        };
        let handshaking = self.session.handshaking();
        let to = ToSocket { stream, unsent: &mut self.unsent };
        let mut out = Out::new(&mut shared.room, to);
        let taken =
            self.session.receive_into(&mut shared.incoming[..carried + got], plain, &mut out);
        // On an error, the alert saying why is in `out`: it goes too.
        let finished = out.finish();
        let len = taken.map_err(|e| TlsError::of(e, handshaking))?;
        finished.map_err(TlsError::Io)?;
        Ok(Got::Data { plain: len, got, asked })
    }

    /// Encrypt `data` and write it (what the socket will not take waits in
    /// `unsent`); the handshake must be done.
    pub fn send(
        &mut self,
        stream: &mut TcpStream,
        room: &mut [u8],
        data: &[u8],
    ) -> Result<(), TlsError> {
        let mut out = Out::new(room, ToSocket { stream, unsent: &mut self.unsent });
        let sent = self.session.send(data, &mut out);
        let finished = out.finish();
        match sent.map_err(|e| TlsError::of(e, false))? {
            true => finished.map(drop).map_err(TlsError::Io),
            false => Err(TlsError::Tls("data to send before the TLS handshake was done".into())),
        }
    }

    /// Send `close_notify` (once): no more data from us.
    pub fn close(&mut self, stream: &mut TcpStream, room: &mut [u8]) -> Result<(), TlsError> {
        if self.session.close_sent() {
            return Ok(());
        }
        let mut out = Out::new(room, ToSocket { stream, unsent: &mut self.unsent });
        let closed = self.session.close(&mut out);
        let finished = out.finish();
        closed.map_err(|e| TlsError::of(e, false))?;
        finished.map(drop).map_err(TlsError::Io)
    }
}

/// Where a session's TLS bytes go: the socket at once, after whatever waits
/// already; what it will not take waits in `unsent`.
struct ToSocket<'a> {
    stream: &'a mut TcpStream,
    unsent: &'a mut Vec<u8>,
}

impl Transmit for ToSocket<'_> {
    fn transmit(&mut self, tls: &[u8]) -> io::Result<()> {
        let done = match self.unsent.is_empty() {
            true => write_some(self.stream, tls)?,
            false => 0,
        };
        let rest = &tls[done..];
        if !rest.is_empty() {
            self.unsent
                .try_reserve(rest.len())
                .map_err(|_| io::Error::from(ErrorKind::OutOfMemory))?;
            self.unsent.extend_from_slice(rest);
        }
        Ok(())
    }
}

/// Write what the socket takes of `bytes` now; how much it took.
fn write_some(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < bytes.len() {
        match stream.write(&bytes[done..]) {
            Ok(0) => return Err(io::Error::from(ErrorKind::WriteZero)),
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
