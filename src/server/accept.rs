//! Taking clients off the listener: accept until the backlog is empty, admit
//! or refuse each one, and shed the backlog when descriptors run out.
//!
//! With `--loops N` each loop accepts from its own listener only; the one
//! thing loops share is the `--max-per-ip` count, touched here at accept and
//! in `close`, never per read (`access.rs`).

use std::fs::File;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::Instant;

use log::{info, warn};
use mio::net::TcpStream;
use mio::Token;

use super::{Server, ACCEPT_RETRY};
use crate::access::Refusal;
use crate::connection::Connection;
use crate::throttle::{more, Line};
use crate::units::{grouped, plural};

impl Server {
    /// Accept every connection waiting in the backlog.
    ///
    /// Edge-triggered: the listener's event fires once for any number of
    /// queued connections, so we accept until `WouldBlock`. The backlog's size
    /// bounds how long one call can take.
    pub(super) fn accept(&mut self) {
        while let Some(listener) = &self.listener {
            match listener.accept() {
                Ok((socket, peer)) => self.admit(socket, peer),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    // The backlog is empty: the next client brings a new event.
                    self.retry_accept_at = None;
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if out_of_descriptors(&e) => return self.shed_backlog(),
                // That one connection died in the backlog (reset before we
                // took it): nothing to serve, keep accepting the others.
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // Something that may pass (e.g. ENOBUFS): try again soon
                    // instead of spinning, and meanwhile serve who we have.
                    if let Some(n) = self.warnings.accept.hit() {
                        warn!("accept failed: {e}; retrying in {ACCEPT_RETRY:?}{}", more(n));
                    }
                    self.retry_accept_at = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    /// Out of descriptors with clients still waiting in the backlog.
    ///
    /// Left there, they would wait for an event that never comes (edge
    /// triggering reports the backlog once). So give back the reserve
    /// descriptor, accept one client and close it at once (it sees a clean
    /// EOF: "no room, try later"), take the reserve again, until the backlog
    /// is empty. Clients that come after a connection has closed are served.
    pub(super) fn shed_backlog(&mut self) {
        let mut shed = 0u64;
        loop {
            self.reserve = None; // closes the reserve descriptor
            let Some(listener) = &self.listener else { break };
            match listener.accept() {
                Ok((socket, _)) => {
                    drop(socket);
                    shed += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    // Even the reserve did not help (the whole system is out of
                    // descriptors): retry later rather than spin.
                    self.retry_accept_at = Some(Instant::now() + ACCEPT_RETRY);
                    break;
                }
            }
            self.reserve = File::open("/dev/null").ok();
            if self.reserve.is_none() {
                self.retry_accept_at = Some(Instant::now() + ACCEPT_RETRY);
                break;
            }
        }
        if self.reserve.is_none() {
            self.reserve = File::open("/dev/null").ok();
        }
        if shed == 0 && self.retry_accept_at.is_none() {
            // accept() reports EMFILE before it looks at the backlog, so the
            // server's own "anyone else?" accept after taking the last
            // descriptor lands here with nobody waiting: nothing to report.
            return;
        }
        if let Some(n) = self.summary.refused.count(&Refusal::NoDescriptor, shed) {
            warn!(
                "out of file descriptors with {} open: closed {}{}",
                plural(self.connections.len() as u64, "connection"),
                plural(shed, "new connection"),
                more(n)
            );
        }
    }

    /// Decide about a freshly accepted client: serve it, or close it at once.
    pub(super) fn admit(&mut self, socket: TcpStream, peer: SocketAddr) {
        let open = self.connections.len();
        if let Err(refusal) = self.admission.check(peer.ip(), open, self.max_connections) {
            if let Some(n) = self.summary.refused.count(&refusal, 1) {
                warn!("refused {peer}: {refusal}{}", more(n));
            }
            return; // dropping the socket closes it
        }
        // Nagle's algorithm would hold back a small echo while an earlier one
        // is unacknowledged; an echo server answers at once.
        let _ = socket.set_nodelay(true);
        // Urgent (MSG_OOB) bytes stay in the stream, so they are echoed in place.
        let _ = socket2::SockRef::from(&socket).set_out_of_band_inline(true);
        let entry = self.connections.vacant_entry();
        let key = entry.key();
        let mut conn = Connection::new(socket, peer, self.config.max_pending);
        if let Err(e) = conn.register(self.poll.registry(), Token(key)) {
            warn!("cannot register {peer}: {e}");
            self.forget_ip(peer);
            return;
        }
        entry.insert(conn);
        self.record.open(key);
        // The one clock read per accepted connection, shared by both users.
        let now = Instant::now();
        if let Some(idle) = &mut self.idle {
            idle.touch(key, now);
        }
        self.summary.served += 1;
        if self.connection_line(now, Line::Opened) {
            info!("connection from {peer} ({} open)", grouped(self.connections.len() as u64));
        }
    }

    pub(super) fn forget_ip(&mut self, peer: SocketAddr) {
        self.admission.left(peer.ip());
    }
}

/// Did `accept` fail because this process (EMFILE) or the system (ENFILE) has
/// no descriptor left?
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}
