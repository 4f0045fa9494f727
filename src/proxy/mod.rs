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
//!   other, pause, pass FINs and resets on.
//! - `words.rs`: the log, in the course's words, under the loop's quota.

mod leg;
mod pipe;
mod relay;
mod target;
mod unsent;
pub mod words;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use log::info;
use mio::net::TcpStream;

use crate::cli::Failure;
use crate::client::Target;
#[cfg(doc)]
use crate::event_loop::Handler;
use crate::event_loop::{self, Service};
pub use crate::event_loop::{Running, Summary};
pub use relay::RelayConnection;
pub use target::parse as parse_target;

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
}

/// The relay service: every admitted client gets a [`RelayConnection`] to `to`.
#[derive(Debug, Clone, Copy)]
pub struct Relay {
    /// The realserver's address (resolved already).
    pub to: SocketAddr,
    /// See [`Config::connect_timeout`].
    pub connect_timeout: Duration,
    /// See [`Config::splice`].
    pub splice: bool,
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
        // As in the echo server: small pieces go on at once, and urgent bytes
        // stay in the stream (relayed in place). Neither failing refuses anyone.
        let _ = socket.set_nodelay(true);
        let _ = socket2::SockRef::from(&socket).set_out_of_band_inline(true);
        let (server, started) = target::connect(self.to)?;
        Ok(RelayConnection::new((socket, server), started, peer, max_pending, self.splice))
    }

    fn setup_timeout(&self) -> Option<Duration> {
        Some(self.connect_timeout)
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
    Ok(Relay { to, connect_timeout: config.connect_timeout, splice: config.splice })
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
