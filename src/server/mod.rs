//! The echo server: `progjar server`, the event loop serving echo clients.
//!
//! The loop's machinery (accepting, admission, memory, timers, stopping,
//! `--loops`) is in `event_loop/`; all this server adds is what one client's
//! bytes go through, in [`echo`]: read, write back, hold what the client is
//! too slow to take, stop reading at the bound, and close after its FIN.

pub mod echo;

use std::io;
use std::net::SocketAddr;

use mio::net::TcpStream;

use crate::cli::Failure;
use crate::event_loop::{self, Service};
pub use crate::event_loop::{Config, Running, Summary};
use echo::EchoConnection;

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
        // Nagle's algorithm would hold back a small echo while an earlier one
        // is unacknowledged; an echo server answers at once. (Either option
        // failing only makes the echo slower or urgent bytes lost, so neither
        // refuses the client.)
        let _ = socket.set_nodelay(true);
        // Urgent (MSG_OOB) bytes stay in the stream, so they are echoed in place.
        let _ = socket2::SockRef::from(&socket).set_out_of_band_inline(true);
        Ok(EchoConnection::new(socket, peer, max_pending))
    }
}

/// Run `progjar server`: bind, print `listening on ADDR:PORT`, echo until a signal.
pub fn run(config: Config) -> Result<(), Failure> {
    event_loop::run(config, Echo)
}

/// Start the echo server in threads of this process (no signal handlers):
/// for tests and programs that embed it. Stop it with [`Running::stop`].
pub fn spawn(config: Config) -> Result<Running, Failure> {
    event_loop::spawn(config, Echo)
}
