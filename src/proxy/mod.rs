//! The relay: `progjar proxy --to HOST:PORT`, the course's man in the middle
//! on the same event loop as the echo server.
//!
//! The course's `insecure_proxy.py` listens on port 15000, connects each
//! client to the real server and copies bytes both ways with two threads per
//! client, logging every piece. It shows the lesson (a relay in the middle
//! reads everything in plaintext), and gets two things wrong the way the
//! course's first server did: a thread per direction per client, and no
//! half-close (a client's FIN never reaches the server).
//!
//! Here a relay is the classic second readiness-loop program: one slab entry
//! per client holding *two* sockets ([`Handler::SOURCES`] = 2, so socket `i`
//! of entry `key` has token `key * 2 + i`), backpressure in both directions,
//! and the FIN and the reset passed on both ways. The loop's machinery
//! (accepting, `--allow`, `--max-connections`, the memory budget, idle
//! timeouts, `--loops`, stopping, `--record`) is the echo server's, unchanged:
//! this folder only says what one relayed client's bytes go through.
//!
//! - `target.rs`: `--to`, looked up once at start; the nonblocking connect.
//! - `leg.rs`: one socket of the pair, its unsent bytes and its half of the
//!   FIN bookkeeping; `unsent.rs`: the buffer that exists only while bytes
//!   wait; `pipe.rs`: the pipe a busy direction's bytes take by `splice(2)`.
//! - `relay.rs`: the pair as the loop's [`Handler`]: read one leg, write the
//!   other, pause, pass FINs on; `relay/end.rs`: resets passed on, and why.
//! - `secure.rs`: a leg that speaks TLS, for `--intercept-cert`: the active
//!   man in the middle, who reads what a client that checks nothing sends.
//! - `words.rs`: the log, in the course's words, under the loop's quota.

mod leg;
mod pipe;
mod relay;
mod secure;
mod target;
mod unsent;
pub mod words;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use log::{info, warn};
use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};

use crate::cli::Failure;
use crate::client::Target;
#[cfg(doc)]
use crate::event_loop::Handler;
use crate::event_loop::{self, Service, MAX_READ_SIZE};
pub use crate::event_loop::{Running, Summary};
use crate::tls::session::{self, ClientSession, ServerSession};
use crate::tls::{self, Identity, Trust};
use leg::Leg;
pub use relay::RelayConnection;
use secure::{Secure, Session};
pub use target::parse as parse_target;

/// What `--intercept-cert` does, said once at start.
pub const INTERCEPT_WARNING: &str = "--intercept-cert: each client's TLS ends here, with our \
     certificate (a client that checks it refuses it; one that does not is read in plaintext), \
     and the realserver's certificate is not checked: a lab tool, never for traffic of others";

/// `--connect-timeout`'s default: as long as the client waits for its
/// connection (`progjar client --timeout`), far past any answer on a network
/// that works, short enough that a client is not left hanging.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The course's proxy port, `progjar proxy`'s default.
pub const DEFAULT_PORT: u16 = 15000;

/// `progjar proxy`'s settings: the loop's (the same as the server's) and the
/// real server's.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen and every bound, as for `progjar server`.
    pub serve: event_loop::Config,
    /// `--to`: the real server, resolved once at start.
    pub to: Target,
    /// `--connect-timeout`: a client whose realserver has not answered by
    /// then is reset.
    pub connect_timeout: Duration,
    /// Busy directions go by `splice(2)` (Linux), unless `--no-splice`.
    pub splice: bool,
    /// `--intercept-cert` and `--intercept-key`: end each client's TLS here.
    pub intercept: Option<InterceptFiles>,
}

/// `--intercept-cert` and `--intercept-key`: the certificate (PEM, a chain
/// allowed) the proxy answers each client's TLS with, and its key.
#[derive(Debug, Clone)]
pub struct InterceptFiles {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// The relay service: every admitted client gets a [`RelayConnection`] to `to`.
#[derive(Debug, Clone)]
pub struct Relay {
    /// The realserver's address (resolved already).
    pub to: SocketAddr,
    /// See [`Config::connect_timeout`].
    pub connect_timeout: Duration,
    /// See [`Config::splice`].
    pub splice: bool,
    /// Intercepting: the TLS both legs speak.
    pub intercept: Option<Intercept>,
}

/// The TLS of an intercepting relay, set up once at start.
#[derive(Debug, Clone)]
pub struct Intercept {
    /// The client's leg: the proxy's certificate.
    pub server: Arc<ServerConfig>,
    /// The realserver's leg: a client that checks nothing (`--insecure`).
    pub client: Arc<ClientConfig>,
    /// The name the hello asks the realserver for (`--to`'s host).
    pub name: ServerName<'static>,
    /// Bytes asked of each read (`--read-size`).
    pub read_size: usize,
}

impl Intercept {
    /// The two legs for `client` and `server`, each with its session.
    fn legs(&self, client: TcpStream, server: TcpStream) -> io::Result<[Leg; 2]> {
        let cannot = |e: rustls::Error| io::Error::other(format!("cannot start TLS: {e}"));
        let ours = ServerSession::server(Arc::clone(&self.server)).map_err(cannot)?;
        let theirs =
            ClientSession::client(Arc::clone(&self.client), self.name.clone()).map_err(cannot)?;
        Ok([
            Leg::secure(client, Secure::new(Session::Server(ours), self.read_size)),
            Leg::secure(server, Secure::new(Session::Client(theirs), self.read_size)),
        ])
    }
}

impl Service for Relay {
    type Handler = RelayConnection;
    const VERB: &'static str = "relayed";
    const LOG: &'static str = words::LOG;
    /// The pipes' descriptors (`pipe.rs`), kept back from `--max-connections`.
    const SPARE_DESCRIPTORS: u64 = 2 * pipe::MAX_PIPES as u64;

    fn open(
        &mut self,
        socket: TcpStream,
        peer: SocketAddr,
        max_pending: usize,
    ) -> io::Result<RelayConnection> {
        crate::sock::serve_at_once(&socket);
        let (server, started) = target::connect(self.to)?;
        let legs = match &self.intercept {
            None => [Leg::new(socket), Leg::new(server)],
            Some(intercept) => intercept.legs(socket, server)?,
        };
        Ok(RelayConnection::new(legs, started, peer, max_pending, self.splice))
    }

    /// The connect to the realserver and, intercepting, both TLS handshakes.
    fn setup_timeout(&self) -> Option<Duration> {
        Some(self.connect_timeout)
    }

    fn buffer_size(&self, read_size: usize) -> usize {
        match self.intercept {
            None => read_size,
            Some(_) => session::scratch_size(read_size),
        }
    }
}

/// Look `--to` up (once, with a time bound) and say where the relay goes.
fn relay_for(config: &Config) -> Result<Relay, Failure> {
    let to = target::resolve(&config.to)?;
    let label = config.to.label();
    match label == to.to_string() {
        true => info!(target: words::LOG, "relaying every client to the realserver {to}"),
        false => {
            info!(target: words::LOG, "relaying every client to the realserver {label} ({to})")
        }
    }
    let intercept = match &config.intercept {
        None => None,
        Some(files) => Some(intercept_for(config, files, to)?),
    };
    // Records go through the proxy's memory, never by splice.
    let splice = config.splice && intercept.is_none();
    Ok(Relay { to, connect_timeout: config.connect_timeout, splice, intercept })
}

/// Load the certificate the proxy shows clients, say so, and warn what it does.
fn intercept_for(
    config: &Config,
    files: &InterceptFiles,
    to: SocketAddr,
) -> Result<Intercept, Failure> {
    let identity = Identity::load(&files.cert, &files.key)?;
    let server = identity.server_config()?;
    let client = tls::client_config(&Trust::Insecure)?;
    info!(target: words::LOG, "intercepting TLS with {}: {}", identity.cert_file, identity.leaf);
    if let Some(warning) = identity.warning(tls::now()) {
        warn!(target: words::LOG, "{warning}");
    }
    warn!(target: words::LOG, "{INTERCEPT_WARNING}");
    // The hello names --to's host (an address names none).
    let host = config.to.host.to_string_lossy().into_owned();
    let name = ServerName::try_from(host).unwrap_or_else(|_| ServerName::from(to.ip()));
    let read_size = config.serve.read_size.clamp(1, MAX_READ_SIZE);
    Ok(Intercept { server, client, name, read_size })
}

/// Run `progjar proxy`: resolve `--to`, bind, print `listening on ADDR:PORT`,
/// relay until a signal.
pub fn run(config: Config) -> Result<(), Failure> {
    let relay = relay_for(&config)?;
    event_loop::run(config.serve, relay)
}

/// Start the proxy in threads of this process (no signal handlers): for tests
/// and programs that embed it. Stop it with [`Running::stop`].
pub fn spawn(config: Config) -> Result<Running, Failure> {
    let relay = relay_for(&config)?;
    event_loop::spawn(config.serve, relay)
}
