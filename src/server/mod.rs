//! The echo server: `progjar server`, the event loop serving echo clients.
//!
//! The loop's machinery (accepting, admission, memory, timers, stopping,
//! `--loops`) is in `event_loop/`; all this server adds is what one client's
//! bytes go through, in [`echo`]: read, write back, hold what the client is
//! too slow to take, stop reading at the bound, and close after its FIN.
//! With `--tls-cert` the same happens through TLS, in [`tls_echo`]; the rules
//! both echoes keep about what they owe are `pending.rs`'s. Which of the two
//! a server is is decided once, at start: each is its own [`Service`], so the
//! plaintext echo's loop has no TLS in it at all.

pub mod echo;
mod pending;
pub mod tls_echo;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use log::{info, warn};
use mio::net::TcpStream;

use crate::cli::Failure;
use crate::event_loop::{self, Service, MAX_READ_SIZE};
pub use crate::event_loop::{Config, Running, Summary};
use crate::tls::{self, Identity};
use echo::EchoConnection;
use tls_echo::TlsEcho;

/// `--handshake-timeout`'s default. A TLS handshake is two round trips (TLS
/// 1.3; three for 1.2): milliseconds on a LAN, under a second across the
/// world, and a second or two more if a packet is lost and sent again (Linux
/// waits at least 200 ms, and doubles the wait each time). 5 s leaves room
/// for that, while a client that connects and says nothing, or trickles its
/// hello a byte at a time (slowloris), holds its slot for 5 s at most.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// `--tls-cert`, `--tls-key` and `--handshake-timeout`: serve TLS clients.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// The certificate (PEM, a chain allowed).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// How long a client may take to finish its handshake.
    pub handshake_timeout: Duration,
}

/// The echo service: every admitted client gets an [`EchoConnection`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Service for Echo {
    type Handler = EchoConnection;
    const VERB: &'static str = "echoed";
    const LOG: &'static str = "progjar::server";

    fn open(
        &mut self,
        socket: TcpStream,
        peer: SocketAddr,
        max_pending: usize,
    ) -> io::Result<EchoConnection> {
        crate::sock::serve_at_once(&socket);
        Ok(EchoConnection::new(socket, peer, max_pending))
    }
}

/// Run `progjar server`: bind, print `listening on ADDR:PORT`, echo until a
/// signal; with `tls`, to TLS clients (the files are checked first: a bad one
/// is one sentence and exit 2, before anything listens).
pub fn run(config: Config, tls: Option<TlsOptions>) -> Result<(), Failure> {
    match tls {
        None => event_loop::run(config, Echo),
        Some(tls) => {
            let service = tls_service(&config, &tls)?;
            event_loop::run(config, service)
        }
    }
}

/// Start the echo server in threads of this process (no signal handlers):
/// for tests and programs that embed it. Stop it with [`Running::stop`].
pub fn spawn(config: Config) -> Result<Running, Failure> {
    event_loop::spawn(config, Echo)
}

/// [`spawn`], serving TLS clients.
pub fn spawn_tls(config: Config, tls: &TlsOptions) -> Result<Running, Failure> {
    let service = tls_service(&config, tls)?;
    event_loop::spawn(config, service)
}

/// Load the certificate and key, say what is served (and warn if it has
/// expired: the course's own certificate has, and still loads).
fn tls_service(config: &Config, tls: &TlsOptions) -> Result<TlsEcho, Failure> {
    let identity = Identity::load(&tls.cert, &tls.key)?;
    let server_config = identity.server_config()?;
    info!(target: Echo::LOG, "TLS with {}: {}", identity.cert_file, identity.leaf);
    if let Some(warning) = identity.warning(tls::now()) {
        warn!(target: Echo::LOG, "{warning}");
    }
    let read_size = config.read_size.clamp(1, MAX_READ_SIZE);
    Ok(TlsEcho::new(server_config, tls.handshake_timeout, read_size))
}
