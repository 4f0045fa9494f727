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
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, warn};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use crate::cli::{Failure, EXIT_FAILURE, EXIT_TIMEOUT, EXIT_TLS, EXIT_USAGE};
use crate::tls::{self, CertInfo, Trust};
use crate::units::secs;

/// `--tls` and its options, from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `--ca FILE` or `--insecure`.
    pub trust: Trust,
    /// `--server-name`: the name the certificate must be for; default the host given.
    pub server_name: Option<String>,
}

/// What `--insecure` allows, said once at start.
pub const INSECURE_WARNING: &str = "--insecure: the server's certificate is not checked, so \
     anyone in the middle can pretend to be the server and read and change everything sent and \
     received";

/// The TLS settings every server of the run shares, made once (the --ca file read once).
#[derive(Debug, Clone)]
pub(super) struct Tls {
    options: TlsOptions,
    config: Arc<ClientConfig>,
}

impl Tls {
    /// Read the --ca file (or warn about --insecure) and build the rustls settings.
    pub(super) fn new(options: &TlsOptions) -> Result<Tls, Failure> {
        if options.trust == Trust::Insecure {
            warn!("{INSECURE_WARNING}");
        }
        let config = tls::client_config(&options.trust)?;
        Ok(Tls { options: options.clone(), config })
    }

    /// The name the certificate must be for: --server-name, else the host as given
    /// (an address is checked as an address).
    fn server_name(&self, host: &OsStr) -> Result<ServerName<'static>, Failure> {
        let name = match &self.options.server_name {
            Some(name) => name.clone(),
            None => host.to_string_lossy().into_owned(),
        };
        ServerName::try_from(name.clone()).map_err(|_| {
            Failure::new(
                EXIT_USAGE,
                format!(
                    "{name:?} is neither a host name nor an IP address, so no certificate can be \
                     for it; give the name to check with --server-name"
                ),
            )
        })
    }

    /// The handshake on `socket`, within `timeout`; logs what was agreed.
    pub(super) fn handshake(
        &self,
        socket: &TcpStream,
        host: &OsStr,
        timeout: Duration,
    ) -> Result<ClientConnection, Failure> {
        let name = self.server_name(host)?;
        // Every write here is whole records, and the handshake's last flight and
        // the first data are small writes in a row: with Nagle's algorithm the
        // second waits for the first's ACK, which a delayed ACK holds up to 200 ms.
        let _ = socket.set_nodelay(true);
        info!(
            "TLS handshake with {} (checking the certificate for {})",
            socket_peer(socket),
            name.to_str()
        );
        let mut conn = ClientConnection::new(Arc::clone(&self.config), name)
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot start TLS: {e}")))?;
        let deadline = Instant::now() + timeout;
        drive(&mut conn, socket, deadline).map_err(|e| failure(e, timeout))?;
        self.log_agreed(&conn);
        Ok(conn)
    }

    /// The course's client logs getpeercert(): what was agreed and who the server is.
    fn log_agreed(&self, conn: &ClientConnection) {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_string(),
            other => format!("{other:?}"),
        };
        let suite = conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite()));
        let group = conn.negotiated_key_exchange_group().map(|g| format!("{:?}", g.name()));
        info!(
            "{version}, cipher suite {}, key exchange {}",
            suite.unwrap_or_else(|| "?".into()),
            group.unwrap_or_else(|| "?".into())
        );
        let leaf =
            conn.peer_certificates().and_then(|chain| chain.first()).and_then(CertInfo::parse);
        match leaf {
            Some(cert) => info!("server certificate: {cert}"),
            None => info!("server certificate: none that can be read"),
        }
        if self.options.trust == Trust::Insecure {
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
        Stop::TimedOut => Failure::new(
            EXIT_TIMEOUT,
            format!(
                "timed out in the TLS handshake after {}: the server may not speak TLS (a \
                 plaintext server waits for a line that never comes)",
                secs(timeout)
            ),
        ),
        Stop::Closed(reset) => Failure::new(
            EXIT_TLS,
            format!(
                "the server {} the connection during the TLS handshake: does it speak TLS?",
                if reset.is_some() { "reset" } else { "closed" }
            ),
        ),
        Stop::Tls(e) => Failure::new(EXIT_TLS, tls::sentence(&e)),
        Stop::Socket(e) => Failure::new(EXIT_FAILURE, format!("the TLS handshake failed: {e}")),
    }
}
