//! A connection's handlers, the TLS side (`--tls`): the handshake after the
//! TCP connect, reads that go through the session before the check, the
//! pattern encrypted before it is written, `close_notify` before the FIN.
//! Each method here is what `conn.rs` calls instead of its plaintext
//! socket call, and leaves the counting and the check to it.

use std::time::Instant;

use progjar::sock::{is_peer_gone, short_read_empties_queue};
use progjar::tls as ptls;

use super::{Conn, Fault, Next, Shared, Stage};
use crate::describe::describe;
use crate::tls::{Got, Tls, TlsError};

impl Conn {
    /// TCP is up: start the session and send its hello.
    pub(super) fn start_tls(&mut self, sh: &mut Shared) -> Result<Next, Fault> {
        let Some(shared) = sh.tls.as_mut() else { return Ok(Next::Keep) };
        // The last handshake flight and the first message are small writes in
        // a row: with Nagle's algorithm the second would wait for the first's
        // ACK, which a delayed ACK holds up to 200 ms.
        let _ = self.stream.set_nodelay(true);
        self.stage = Stage::Handshaking;
        match Tls::start(shared, &mut self.stream) {
            Ok(tls) => {
                self.write_blocked = tls.blocked();
                self.tls = Some(Box::new(tls));
                Ok(Next::Keep)
            }
            Err(e) => Err(self.tls_fault(e, "", 0, sh)),
        }
    }

    /// Writable again: what the socket did not take before goes now.
    pub(super) fn flush_tls(&mut self, sh: &Shared) -> Result<(), Fault> {
        let Some(tls) = self.tls.as_mut() else { return Ok(()) };
        if let Err(e) = tls.flush(&mut self.stream) {
            return Err(self.tls_fault(TlsError::Io(e), "while sending at", self.sent, sh));
        }
        self.write_blocked = tls.blocked();
        Ok(())
    }

    /// Read and decrypt everything the kernel holds, and check the data as a
    /// plaintext read is checked; the handshake's end opens the connection.
    pub(super) fn read_all_tls(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        closing: bool,
    ) -> Result<Next, Fault> {
        loop {
            let (Some(tls), Some(shared)) = (self.tls.as_mut(), sh.tls.as_mut()) else {
                return Ok(Next::Keep);
            };
            let read = tls.read(&mut self.stream, shared, &mut sh.inp);
            if self.stage == Stage::Handshaking && !tls.handshaking() {
                tls.count(&mut shared.tally);
                self.stage = Stage::Open;
                sh.stats.connected(now.saturating_duration_since(self.started));
            }
            let peer_closed = tls.peer_closed();
            match read {
                Ok(Got::Data { plain, got, asked }) => {
                    if plain > 0 {
                        self.check(plain, sh, now)?;
                    }
                    // The server's close_notify: it sends nothing more. After
                    // ours it is the answer, and its FIN follows.
                    if peer_closed && self.stage != Stage::Closing {
                        return self.on_eof(sh);
                    }
                    // As for plaintext (`read_all`): a short read ends the turn.
                    if !closing && short_read_empties_queue(got, asked) {
                        return Ok(Next::Keep);
                    }
                }
                Ok(Got::Empty) => return Ok(Next::Keep),
                Ok(Got::Eof { .. }) if self.stage == Stage::Handshaking => {
                    return Err(self.fault(format_args!("{}", ptls::handshake_ended(false))));
                }
                Ok(Got::Eof { cut: true }) => {
                    return Err(self.fault(format_args!(
                        "the server closed the connection in the middle of a TLS record at {}",
                        self.at(self.received, sh)
                    )))
                }
                Ok(Got::Eof { cut: false }) => return self.on_eof(sh),
                Err(e) => {
                    return Err(self.tls_fault(e, "while reading the echo at", self.received, sh))
                }
            }
        }
    }

    /// Encrypt and write the pattern up to the send goal, a write's worth at
    /// a time, until the socket keeps some back: then nothing more is
    /// encrypted until a writable event has let it go.
    pub(super) fn send_tls(&mut self, sh: &mut Shared) -> Result<(), Fault> {
        let goal = self.send_goal(sh);
        let mut stamp: Option<Instant> = None;
        while self.sent < goal {
            let (Some(tls), Some(shared)) = (self.tls.as_mut(), sh.tls.as_mut()) else {
                return Ok(());
            };
            if tls.blocked() {
                self.write_blocked = true;
                return Ok(());
            }
            let len = (goal - self.sent).min(sh.out.len() as u64) as usize;
            sh.pattern.fill(self.id, self.sent, &mut sh.out[..len]);
            if let Err(e) = tls.send(&mut self.stream, &mut shared.room, &sh.out[..len]) {
                return Err(self.tls_fault(e, "while sending at", self.sent, sh));
            }
            let at = *stamp.get_or_insert_with(Instant::now);
            self.wrote(len, at, sh);
        }
        Ok(())
    }

    /// Before the FIN: `close_notify`, and all of it written. True when the
    /// FIN may go now (at once without TLS); false while TLS bytes wait for
    /// room, and the next writable event comes back here.
    pub(super) fn close_tls(&mut self, sh: &mut Shared) -> Result<bool, Fault> {
        let (Some(tls), Some(shared)) = (self.tls.as_mut(), sh.tls.as_mut()) else {
            return Ok(true);
        };
        if let Err(e) = tls.close(&mut self.stream, &mut shared.room) {
            return Err(self.tls_fault(e, "while closing after", self.sent, sh));
        }
        self.write_blocked = tls.blocked();
        Ok(!self.write_blocked)
    }

    /// A TLS failure in words: in the handshake, the sentence alone (the same
    /// on every connection, so the summary says it once with its count);
    /// after it, `what` and where in the stream (`offset`).
    fn tls_fault(&self, e: TlsError, what: &str, offset: u64, sh: &Shared) -> Fault {
        if matches!(self.stage, Stage::Connecting | Stage::Handshaking) {
            let why = match e {
                TlsError::Tls(sentence) => sentence,
                TlsError::Io(e) if is_peer_gone(&e) => ptls::handshake_ended(true),
                TlsError::Io(e) => format!("{} in the TLS handshake", describe(&e)),
                TlsError::TooLarge => {
                    "the server sent a TLS handshake message larger than 64 KiB".to_string()
                }
            };
            return self.fault(format_args!("{why}"));
        }
        let at = self.at(offset, sh);
        match e {
            TlsError::Tls(sentence) => self.fault(format_args!("{sentence} {what} {at}")),
            TlsError::Io(e) => self.fault(format_args!("{} {what} {at}", describe(&e))),
            TlsError::TooLarge => {
                self.fault(format_args!("a TLS record larger than any TLS peer sends {what} {at}"))
            }
        }
    }
}
