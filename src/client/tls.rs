//! `--tls`: the handshake, before the exchange, bounded by `--timeout`.
//!
//! The handshake runs alone, on this thread, before the writer thread exists:
//! it is a conversation (hello, certificate, finished) that must end before
//! either side sends data, and doing it first means the exchange only ever sees
//! a connection that is up and checked. Then the course's client logs
//! `getpeercert()`; this one logs the version, the cipher suite, the key
//! exchange and what the certificate says (subject, names, dates, issuer).

use std::ffi::OsStr;
use std::io::{self, ErrorKind};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use log::{info, warn};
use rustls::ClientConnection;

use crate::cli::{Failure, EXIT_FAILURE, EXIT_TIMEOUT, EXIT_TLS};
use crate::tls::{self, Agreed, CertInfo, ClientTls, TlsOptions};
use crate::units::secs;

/// The TLS settings every server of the run shares (`tls/client.rs`, the
/// same as `progjar-stress --tls`'s), and the blocking handshake.
#[derive(Debug, Clone)]
pub(super) struct Tls(ClientTls);

impl Tls {
    /// Read the --ca file (or warn about --insecure) and build the rustls settings.
    pub(super) fn new(options: &TlsOptions) -> Result<Tls, Failure> {
        let tls = ClientTls::new(options)?;
        if let Some(warning) = tls.warning() {
            warn!("{warning}");
        }
        Ok(Tls(tls))
    }

    /// The handshake on `socket`, within `timeout`; logs what was agreed.
    pub(super) fn handshake(
        &self,
        socket: &TcpStream,
        host: &OsStr,
        timeout: Duration,
    ) -> Result<ClientConnection, Failure> {
        let target = self.0.to(host)?;
        // Every write here is whole records, and the handshake's last flight and
        // the first data are small writes in a row: with Nagle's algorithm the
        // second waits for the first's ACK, which a delayed ACK holds up to 200 ms.
        let _ = socket.set_nodelay(true);
        info!(
            "TLS handshake with {} (checking the certificate for {})",
            socket_peer(socket),
            target.name()
        );
        let mut conn = target
            .connection()
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot start TLS: {e}")))?;
        let deadline = Instant::now() + timeout;
        drive(&mut conn, socket, deadline).map_err(|e| failure(e, timeout))?;
        self.log_agreed(&conn);
        Ok(conn)
    }

    /// The course's client logs getpeercert(): what was agreed and who the server is.
    fn log_agreed(&self, conn: &ClientConnection) {
        info!("{}", Agreed::of(conn));
        let leaf =
            conn.peer_certificates().and_then(|chain| chain.first()).and_then(CertInfo::parse);
        match leaf {
            Some(cert) => info!("server certificate: {cert}"),
            None => info!("server certificate: none that can be read"),
        }
        if !self.0.checks_certificate() {
            warn!("the certificate above was not checked (--insecure)");
        }
    }
}

/// The peer's address, for the log.
fn socket_peer(socket: &TcpStream) -> String {
    socket.peer_addr().map_or_else(|_| "the server".to_string(), |a| a.to_string())
}

/// Why the handshake stopped.
enum Stop {
    /// The deadline passed.
    TimedOut,
    /// The server closed (or reset) the connection.
    Closed(Option<io::Error>),
    /// rustls refused: a certificate, an alert, a message that is not TLS.
    Tls(rustls::Error),
    /// The socket failed otherwise.
    Socket(io::Error),
}

/// Write and read until the handshake is done; every wait ends by `deadline`.
fn drive(
    conn: &mut ClientConnection,
    mut socket: &TcpStream,
    deadline: Instant,
) -> Result<(), Stop> {
    // Bounded: each pass writes or reads at least one byte, or waits at most
    // until the deadline, or ends.
    while conn.is_handshaking() || conn.wants_write() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Stop::TimedOut);
        }
        socket.set_read_timeout(Some(left)).map_err(Stop::Socket)?;
        socket.set_write_timeout(Some(left)).map_err(Stop::Socket)?;
        if conn.wants_write() {
            conn.write_tls(&mut socket).map_err(socket_stop)?;
            continue;
        }
        match conn.read_tls(&mut socket) {
            Ok(0) => return Err(Stop::Closed(None)),
            Ok(_) => {}
            Err(e) => return Err(socket_stop(e)),
        }
        if let Err(e) = conn.process_new_packets() {
            // Tell the server why (rustls queued the alert), if it still listens.
            let _ = conn.write_tls(&mut socket);
            return Err(Stop::Tls(e));
        }
    }
    Ok(())
}

fn socket_stop(e: io::Error) -> Stop {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Stop::TimedOut,
        _ if crate::sock::is_peer_gone(&e) => Stop::Closed(Some(e)),
        _ => Stop::Socket(e),
    }
}

/// One sentence for a failed handshake, with its exit status.
fn failure(stop: Stop, timeout: Duration) -> Failure {
    match stop {
        Stop::TimedOut => Failure::new(EXIT_TIMEOUT, tls::handshake_timed_out(&secs(timeout))),
        Stop::Closed(reset) => Failure::new(EXIT_TLS, tls::handshake_ended(reset.is_some())),
        Stop::Tls(e) => Failure::new(EXIT_TLS, tls::sentence(&e)),
        Stop::Socket(e) => Failure::new(EXIT_FAILURE, format!("the TLS handshake failed: {e}")),
    }
}
