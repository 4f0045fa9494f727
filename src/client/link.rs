//! The connection the exchange runs on: TCP, or TLS over it (`--tls`).
//!
//! The writer thread sends while this thread reads (`exchange.rs` says why). With
//! TLS both go through one rustls connection, which encrypts what one thread
//! sends and decrypts what the other receives, so it sits behind a mutex. The
//! rule that keeps that from deadlocking: **the lock is never held while a
//! socket call blocks.** The writer encrypts under the lock into a buffer of its
//! own and writes that buffer after unlocking; the reader reads the socket
//! unlocked, then takes the lock to decrypt. Were the writer to hold the lock
//! through a blocked `write()` (a server that stops reading until we read its
//! echo), the reader could never decrypt that echo, and both would wait forever.
//!
//! Only the writer thread ever takes bytes out of rustls to send (`write_tls`),
//! so TLS records leave in the order rustls made them; what the reader's side
//! makes rustls want to send (an alert, a key update) goes out with the writer's
//! next block.
//!
//! Both ends stay bounded: rustls buffers at most 64 KiB of records to send (its
//! default limit, which is also why the writer encrypts a block in pieces) and
//! 16 KiB of decrypted bytes, and the reader holds one socket read of ciphertext.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::ClientConnection;

use crate::tls;

/// The largest TLS record on the wire (16 KiB of data, at most 2 KiB of
/// expansion, a 5-byte header): the reader's ciphertext buffer holds at least one.
const MAX_RECORD: usize = 16 * 1024 + 2048 + 5;

/// A TLS connection shared by the writer thread and the reader.
pub(super) type Shared = Arc<Mutex<ClientConnection>>;

/// A poisoned lock only means the other thread panicked holding it; the
/// connection may be mid-record, and the next rustls call says so if it matters.
fn lock(tls: &Shared) -> MutexGuard<'_, ClientConnection> {
    tls.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A connected socket, with TLS on it or not.
#[derive(Debug)]
pub(super) struct Link {
    /// The TCP socket: timeouts, shutdown and Ctrl-C act on it in both cases.
    pub socket: TcpStream,
    /// The TLS connection, after its handshake.
    pub tls: Option<Shared>,
}

impl Link {
    /// The writer's end (on a clone of the socket) and the reader's end.
    pub(super) fn split(&self, read_size: usize) -> io::Result<(Sender, Receiver)> {
        let sender =
            Sender { socket: self.socket.try_clone()?, tls: self.tls.clone(), records: Vec::new() };
        let ciphertext = match self.tls {
            Some(_) => vec![0; read_size.max(MAX_RECORD)],
            None => Vec::new(),
        };
        let receiver = Receiver {
            socket: self.socket.try_clone()?,
            tls: self.tls.clone(),
            ciphertext,
            start: 0,
            end: 0,
        };
        Ok((sender, receiver))
    }
}

/// The writer thread's end: sends, then half-closes.
#[derive(Debug)]
pub(super) struct Sender {
    socket: TcpStream,
    tls: Option<Shared>,
    /// Records rustls made under the lock, written after it is released.
    records: Vec<u8>,
}

impl Sender {
    /// Send all of `bytes` (encrypted first with TLS).
    pub(super) fn send(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let Some(tls) = &self.tls else { return self.socket.write_all(bytes) };
        // Bounded: each pass hands rustls at least one byte, or fails.
        while !bytes.is_empty() {
            self.records.clear();
            let taken = {
                let mut conn = lock(tls);
                let taken = conn.writer().write(bytes)?;
                drain(&mut conn, &mut self.records)?;
                taken
            };
            if taken == 0 && self.records.is_empty() {
                return Err(io::Error::new(ErrorKind::WriteZero, "TLS took no byte to send"));
            }
            self.socket.write_all(&self.records)?;
            bytes = &bytes[taken..];
        }
        Ok(())
    }

    /// "No more data from us": with TLS a `close_notify` first, then the FIN
    /// (`shutdown(SHUT_WR)`), which a server that ignores `close_notify` still sees.
    pub(super) fn half_close(&mut self) -> io::Result<()> {
        if let Some(tls) = &self.tls {
            self.records.clear();
            {
                let mut conn = lock(tls);
                conn.send_close_notify();
                drain(&mut conn, &mut self.records)?;
            }
            self.socket.write_all(&self.records)?;
        }
        self.socket.shutdown(Shutdown::Write)
    }

    /// The link is TLS (the log says close_notify too).
    pub(super) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Stop both directions at once (the reader's blocked read returns 0).
    pub(super) fn abort(&self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

/// Every record rustls has ready to send, appended to `out`.
fn drain(conn: &mut ClientConnection, out: &mut Vec<u8>) -> io::Result<()> {
    // Bounded: rustls holds at most its buffer limit of records.
    while conn.wants_write() {
        conn.write_tls(out)?;
    }
    Ok(())
}

/// The reader's end: the echo's bytes, decrypted with TLS.
#[derive(Debug)]
pub(super) struct Receiver {
    socket: TcpStream,
    tls: Option<Shared>,
    /// One socket read of ciphertext, of which `start..end` is not yet handed to rustls.
    ciphertext: Vec<u8>,
    start: usize,
    end: usize,
}

impl Receiver {
    /// How long one read may wait for the socket (SO_RCVTIMEO).
    pub(super) fn set_read_timeout(&self, wait: Duration) -> io::Result<()> {
        self.socket.set_read_timeout(Some(wait))
    }

    /// Read like a socket: bytes of the echo, 0 at the end (the server's FIN or
    /// its `close_notify`), or the socket's error (a timeout is `WouldBlock`).
    pub(super) fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else { return (&self.socket).read(out) };
        // Bounded: each pass returns, hands rustls ciphertext, or reads the socket.
        loop {
            {
                let mut conn = lock(tls);
                match conn.reader().read(out) {
                    // Ok(0): the server's close_notify.
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if self.start < self.end {
                    let mut pending = &self.ciphertext[self.start..self.end];
                    let taken = conn.read_tls(&mut pending)?;
                    conn.process_new_packets()
                        .map_err(|e| io::Error::new(ErrorKind::InvalidData, tls::sentence(&e)))?;
                    if taken == 0 {
                        return Err(io::Error::new(
                            ErrorKind::InvalidData,
                            "a TLS record too large",
                        ));
                    }
                    self.start += taken;
                    continue;
                }
            }
            // Unlocked: the writer may encrypt and send while we wait here.
            let n = (&self.socket).read(&mut self.ciphertext)?;
            if n == 0 {
                // The server's FIN without a close_notify (Python's ssl sends none
                // unless it calls unwrap()): the end, as with plain TCP.
                return Ok(0);
            }
            (self.start, self.end) = (0, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpListener};
    use std::thread;

    use rustls::pki_types::{PrivateKeyDer, ServerName};
    use rustls::{ServerConfig, ServerConnection, StreamOwned};
    use socket2::{Domain, SockRef, Socket, Type};

    use super::super::exchange::{exchange, ReadEnd};
    use super::super::output::Output;
    use super::super::source::Source;
    use super::super::Payload;
    use super::*;

    /// Socket buffers this small hold far less than the 1 MiB the writer may have
    /// in flight, so the writer's `write()` blocks while the server's does too.
    const SMALL: usize = 16 * 1024;

    fn small_buffers(socket: SockRef<'_>) {
        socket.set_recv_buffer_size(SMALL).unwrap();
        socket.set_send_buffer_size(SMALL).unwrap();
    }

    /// A rustls echo server with small buffers that stops reading while it writes.
    fn blocking_echo_server() -> SocketAddr {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let config = ServerConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        small_buffers(SockRef::from(&listener));
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (socket, _) = listener.accept().unwrap();
            small_buffers(SockRef::from(&socket));
            let conn = ServerConnection::new(Arc::new(config)).unwrap();
            let mut tls = StreamOwned::new(conn, socket);
            let mut buf = vec![0; 64 * 1024];
            while let Ok(n @ 1..) = tls.read(&mut buf) {
                if tls.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            tls.conn.send_close_notify();
            let _ = tls.flush();
        });
        addr
    }

    /// Were the lock held across a blocked socket write, the reader could not
    /// decrypt the echo the server is blocked writing, and this would time out.
    #[test]
    fn the_lock_is_never_held_while_a_socket_call_blocks() {
        let addr = blocking_echo_server();
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        small_buffers(SockRef::from(&socket));
        socket.connect(&addr.into()).unwrap();
        let mut socket = TcpStream::from(socket);
        let config = tls::client_config(&tls::Trust::Insecure).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn = ClientConnection::new(config, name).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut socket).unwrap();
        }
        let source = Source::open(&Payload::Generated(4 * 1024 * 1024)).unwrap();
        let mut output = Output::open(None, &source).unwrap();
        let link = Link { socket, tls: Some(Arc::new(Mutex::new(conn))) };
        let wait = Duration::from_secs(5);
        let transfer = exchange(link, source, &mut output, 64 * 1024, wait).unwrap();
        assert!(matches!(transfer.read_end, ReadEnd::Closed), "{:?}", transfer.read_end);
        assert_eq!((transfer.sent, transfer.received), (4 << 20, 4 << 20));
        assert!(transfer.difference.is_none());
    }
}
