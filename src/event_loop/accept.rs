//! Taking clients off the listener: accept until the backlog is empty, admit
//! or refuse each one, and shed the backlog when descriptors run out.
//!
//! With `--loops N` each loop accepts from its own listener only; the one
//! thing loops share is the `--max-per-ip` count, touched here at accept and
//! in `close`, never per read (`admission.rs`).

use std::fs::File;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::Instant;

use log::{info, warn};
use mio::net::TcpStream;

use super::admission::Refusal;
use super::service::Entry;
use super::throttle::{more, Line};
use super::{EventLoop, Handler, Service, ACCEPT_RETRY};
use crate::units::{grouped, plural};

impl<S: Service> EventLoop<S> {
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
                        warn!(target: S::LOG, "accept failed: {e}; retrying in {ACCEPT_RETRY:?}{}", more(n));
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
                target: S::LOG,
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
                warn!(target: S::LOG, "refused {peer}: {refusal}{}", more(n));
            }
            return; // dropping the socket closes it
        }
        let slot = self.connections.vacant_entry();
        let key = slot.key();
        let opened = self.service.open(socket, peer, self.config.max_pending).and_then(|mut h| {
            h.register(self.poll.registry(), key)?;
            Ok(h)
        });
        let handler = match opened {
            Ok(handler) => handler,
            Err(e) => {
                warn!(target: S::LOG, "cannot serve {peer}: {e}");
                self.admission.left(peer.ip());
                return;
            }
        };
        // The one clock read per accepted connection, shared by its three users.
        let now = Instant::now();
        slot.insert(Entry { handler, opened: now, queued_again: false });
        self.record.open(key);
        if let Some(idle) = &mut self.idle {
            idle.touch(key, now);
        }
        if let (Some(setup), Some(entry)) = (&mut self.setup, self.connections.get(key)) {
            if !entry.handler.set_up() {
                setup.touch(key, now);
            }
        }
        self.summary.served += 1;
        if self.connection_line(now, Line::Opened) {
            let open = grouped(self.connections.len() as u64);
            info!(target: S::LOG, "connection from {peer} ({open} open)");
        }
    }
}

/// Did `accept` fail because this process (EMFILE) or the system (ENFILE) has
/// no descriptor left?
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}
