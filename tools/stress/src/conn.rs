//! One client connection: finish the nonblocking connect, write the pattern,
//! read the echo back and check every byte.
//!
//! A connection is a little state machine driven by readiness events:
//!
//! ```text
//! Connecting --(writable, no error, has a peer)--> Open --(all echoed, FIN sent)--> Closing --(server's EOF)--> done
//! ```
//!
//! With `--tls` a connection goes through `Handshaking` between `Connecting`
//! and `Open` (its hello sent once TCP is up; open when the handshake is
//! done, which is when its connect time ends), and it sends `close_notify`
//! before its FIN. Its bytes go through the TLS session (`tls.rs`), and
//! `conn_tls.rs` holds the handlers' TLS side; the check is the same.
//!
//! Each connection owns only counters: how far its stream has been written
//! (`sent`) and read back (`received`), plus the send time of each message in
//! flight. The bytes themselves are computed from those offsets (see
//! `pattern.rs`) into buffers shared by all connections ([`Shared`]), so
//! 10000 connections cost a few hundred bytes each, not a buffer each.
//!
//! The socket is registered once for READABLE | WRITABLE and never re-registered:
//! mio is edge-triggered, so an event means "something changed", and each handler
//! reads until the socket is empty (`WouldBlock`, or a short read: see
//! `read_all`) and writes until `WouldBlock` or nothing is left to write.
//! Writability is remembered in `write_blocked` so that a connection with
//! room in its send buffer writes its next message at once, without waiting for
//! an event that will not come.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::TcpStream;
use progjar::sock::short_read_empties_queue;
use progjar::units;

use crate::describe::describe;
use crate::pattern::Pattern;
use crate::stats::Stats;
use crate::tls::{Tls, TlsShared};

#[path = "conn_tls.rs"]
mod conn_tls;

/// How long a connect may take. A SYN dropped because the server's listen
/// backlog is full is resent after 1, 3 and 7 seconds (Linux's exponential
/// backoff), so 10 s lets a flood of connects ride out three drops before it
/// counts as a failure. With `--tls` the handshake must be done within it too.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What this connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends messages and checks their echo.
    Active,
    /// Connects and stays silent: it only occupies a slot in the server.
    Idle,
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `connect()` was called; the handshake has not finished.
    Connecting,
    /// `--tls`: TCP is up, the TLS handshake is not done yet.
    Handshaking,
    /// Connected: sending and checking.
    Open,
    /// Everything was echoed and our FIN is sent; waiting for the server's EOF.
    Closing,
}

/// How a handler left the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep it; more events will come.
    Keep,
    /// It finished cleanly: close it and count it as ok.
    Done,
}

/// An error on one connection: the connection's number, and one line (with
/// the stream offset where it matters). The connection is closed and counted
/// as failed; the summary groups the same line on many connections.
#[derive(Debug)]
pub struct Fault {
    /// The connection's number.
    pub conn: u32,
    /// What went wrong.
    pub what: String,
}

/// What every connection's handlers share: the plan and the scratch buffers.
pub struct Shared {
    /// The byte pattern (and so the message size).
    pub pattern: Pattern,
    /// Messages each active connection may have in flight.
    pub pipeline: u64,
    /// Messages per connection (`-n`), or `None` to run until the deadline.
    pub per_connection: Option<u64>,
    /// The deadline has passed: start no new message.
    pub stopping: bool,
    /// `--echo-timeout`: an echo slower than this is late.
    pub echo_timeout: Duration,
    /// Where the pattern is written before each `write()`.
    pub out: Box<[u8]>,
    /// Where each `read()` lands.
    pub inp: Box<[u8]>,
    /// Where the expected bytes are computed to compare with `inp`.
    pub expect: Box<[u8]>,
    /// The run's counters.
    pub stats: Stats,
    /// `--tls`: the session settings, the buffers TLS needs, the handshakes' tally.
    pub tls: Option<TlsShared>,
}

impl Shared {
    /// How long a connection may go without an echo byte while owing some
    /// before they count as lost: twice `--echo-timeout`, so that an echo that
    /// is late, even by as much again, is still seen and reported as late.
    pub fn lost_after(&self) -> Duration {
        self.echo_timeout.saturating_mul(2)
    }
}

/// One client connection.
pub struct Conn {
    /// The connection's number (0.. for active connections, then the idle ones):
    /// names it in messages and seeds its byte pattern.
    pub id: u32,
    /// Active or idle.
    pub role: Role,
    /// Where it is in its life.
    stage: Stage,
    /// The socket.
    pub stream: TcpStream,
    /// When `connect()` was called.
    started: Instant,
    /// When it last connected or received a byte: the echo timeout counts from here.
    last_progress: Instant,
    /// Bytes of its stream handed to the kernel so far.
    sent: u64,
    /// Bytes of its stream read back and verified so far.
    received: u64,
    /// The last `write()` hit `WouldBlock`: wait for a writable event.
    write_blocked: bool,
    /// Send time of each message in flight, oldest first. It holds at most
    /// `pipeline` entries, so after the first messages it never allocates again.
    stamps: VecDeque<Instant>,
    /// `--tls`: the session, once TCP is up (boxed: a plaintext run pays a pointer).
    tls: Option<Box<Tls>>,
}

impl Conn {
    /// Connection `id`, whose nonblocking connect on `stream` was started at
    /// `now`: the handshake finishes later and shows up as a writable event.
    pub fn new(id: u32, role: Role, stream: TcpStream, now: Instant, pipeline: u64) -> Conn {
        // Room for a few stamps now; it grows to `pipeline` once and stays there.
        let stamps = VecDeque::with_capacity(if role == Role::Active {
            pipeline.min(16) as usize
        } else {
            0
        });
        Conn {
            id,
            role,
            stage: Stage::Connecting,
            stream,
            started: now,
            last_progress: now,
            sent: 0,
            received: 0,
            write_blocked: false,
            stamps,
            tls: None,
        }
    }

    /// Has the handshake finished (TCP's, and with `--tls` TLS's), whatever happened since?
    pub fn is_connected(&self) -> bool {
        !matches!(self.stage, Stage::Connecting | Stage::Handshaking)
    }

    /// Messages sent whose echo is not complete yet.
    pub fn in_flight(&self) -> u64 {
        self.stamps.len() as u64
    }

    /// A fault on this connection.
    fn fault(&self, what: std::fmt::Arguments<'_>) -> Fault {
        Fault { conn: self.id, what: what.to_string() }
    }

    /// Where in the stream we are, for error messages: `offset 1234 (message 2, byte 210)`.
    fn at(&self, offset: u64, sh: &Shared) -> String {
        let size = sh.pattern.size();
        format!(
            "offset {} (message {}, byte {} of it)",
            units::grouped(offset),
            units::grouped(offset / size),
            units::grouped(offset % size)
        )
    }

    /// Handle a readiness event.
    pub fn on_event(
        &mut self,
        event: &Event,
        sh: &mut Shared,
        now: Instant,
    ) -> Result<Next, Fault> {
        if self.stage == Stage::Connecting {
            return self.finish_connect(sh, now);
        }
        if event.is_writable() {
            self.write_blocked = false;
            self.flush_tls(sh)?;
        }
        // A reset or the server's FIN arrives as readable, read-closed or error;
        // in every case read() tells us which, so read on any of them.
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            let closing = event.is_read_closed() || event.is_error();
            if let Next::Done = self.read_all(sh, now, closing)? {
                return Ok(Next::Done);
            }
        }
        // Reads first, then writes: reading completes messages and so makes room
        // in the pipeline for new ones. We never read again after writing in the
        // same event, so no echo can be seen before its send time was stamped.
        self.send_and_maybe_finish(sh)
    }

    /// The first events of a connect: did it work?
    fn finish_connect(&mut self, sh: &mut Shared, now: Instant) -> Result<Next, Fault> {
        // A failed connect (refused, unreachable) stores its error on the socket;
        // take_error() reads and clears it (getsockopt SO_ERROR).
        match self.stream.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => {
                return Err(self.fault(format_args!("connect failed: {}", describe(&e))))
            }
        }
        // Writable without an error usually means connected, but epoll may also wake
        // us early; having a peer address is the proof the handshake finished.
        match self.stream.peer_addr() {
            Ok(_) => {}
            // Not connected yet: a spurious wake-up. The real one will follow.
            Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(Next::Keep),
            Err(e) => return Err(self.fault(format_args!("connect failed: {}", describe(&e)))),
        }
        self.last_progress = now;
        let latency = now.saturating_duration_since(self.started);
        sh.stats.tcp_connected(latency);
        if sh.tls.is_some() {
            return self.start_tls(sh);
        }
        self.stage = Stage::Open;
        sh.stats.connected(latency);
        match self.role {
            Role::Active => self.send_and_maybe_finish(sh),
            Role::Idle => Ok(Next::Keep),
        }
    }

    /// Read everything the kernel holds for us and check it. `closing` says the
    /// event also reported the server's FIN or an error.
    fn read_all(&mut self, sh: &mut Shared, now: Instant, closing: bool) -> Result<Next, Fault> {
        if self.tls.is_some() {
            return self.read_all_tls(sh, now, closing);
        }
        loop {
            match self.stream.read(&mut sh.inp) {
                // Ok(0) is the server's FIN: it will send nothing more.
                Ok(0) => return self.on_eof(sh),
                Ok(n) => {
                    self.check(n, sh, now)?;
                    // A short read may end the turn (`sock::short_read_empties_queue`
                    // says why), but not when this event also reported the FIN:
                    // that makes no new edge, so read on to meet it.
                    if !closing && short_read_empties_queue(n, sh.inp.len()) {
                        return Ok(Next::Keep);
                    }
                }
                // Nothing more to read now: edge-triggered readiness will tell us
                // when more arrives. The loop is bounded: the server can only
                // echo what we sent, at most `pipeline` messages.
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Next::Keep),
                // A signal interrupted the call before any byte moved: just retry.
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // A reset (the server crashed or closed with unread data) or another error.
                Err(e) => {
                    return Err(self.fault(format_args!(
                        "{} while reading the echo at {}",
                        describe(&e),
                        self.at(self.received, sh)
                    )))
                }
            }
        }
    }

    /// The server closed its side.
    fn on_eof(&mut self, sh: &Shared) -> Result<Next, Fault> {
        match (self.role, self.stage) {
            // We sent our FIN after the last echo; this is the answer: a clean end.
            (Role::Active, Stage::Closing) => Ok(Next::Done),
            (Role::Active, _) if self.received < self.sent => Err(self.fault(format_args!(
                "short echo: the server closed the connection at {} after echoing {} of the {} sent",
                self.at(self.received, sh),
                units::grouped(self.received),
                units::plural(self.sent, "byte")
            ))),
            (Role::Active, _) => Err(self.fault(format_args!(
                "the server closed the connection at {} before the run was over",
                self.at(self.received, sh)
            ))),
            (Role::Idle, _) => {
                Err(self.fault(format_args!("idle connection closed by the server (is its idle timeout shorter than the run?)")))
            }
        }
    }

    /// Check `n` freshly read bytes (in `sh.inp`) against the pattern.
    fn check(&mut self, n: usize, sh: &mut Shared, now: Instant) -> Result<(), Fault> {
        self.last_progress = now;
        if self.role == Role::Idle {
            return Err(self.fault(format_args!(
                "idle connection received {} although it sent none",
                units::plural(n as u64, "byte")
            )));
        }
        // The server may only echo what we sent; anything past `sent` is extra.
        let owed = (self.sent - self.received).min(n as u64) as usize;
        if let Some((i, expected)) =
            sh.pattern.first_mismatch(self.id, self.received, &sh.inp[..owed], &mut sh.expect)
        {
            let offset = self.received + i as u64;
            return Err(self.fault(format_args!(
                "wrong byte in the echo at {}: got 0x{:02x}, expected 0x{expected:02x}",
                self.at(offset, sh),
                sh.inp[i]
            )));
        }
        if owed < n {
            return Err(self.fault(format_args!(
                "the echo is longer than what was sent: {} extra after {}",
                units::plural((n - owed) as u64, "byte"),
                self.at(self.sent, sh)
            )));
        }
        let size = sh.pattern.size();
        let done_before = self.received / size;
        self.received += n as u64;
        sh.stats.received(n as u64);
        for message in done_before..self.received / size {
            // Every completed message was stamped when its first byte was written.
            if let Some(sent_at) = self.stamps.pop_front() {
                let latency = now.saturating_duration_since(sent_at);
                sh.stats.message(latency);
                if latency > sh.echo_timeout {
                    self.late(message, latency, sh);
                }
            }
        }
        Ok(())
    }

    /// Message `message` came back, but after `--echo-timeout`: an error, yet
    /// not a lost byte, and the connection carries on.
    #[cold]
    fn late(&self, message: u64, latency: Duration, sh: &mut Shared) {
        let why = self.fault(format_args!(
            "late echo: message {} came back after {}, over --echo-timeout {}",
            units::grouped(message),
            units::micros(latency.as_micros() as u64),
            units::secs(sh.echo_timeout)
        ));
        sh.stats.late(why.conn, why.what);
    }

    /// How far the stream may be written now.
    fn send_goal(&self, sh: &Shared) -> u64 {
        let size = sh.pattern.size();
        // A message whose first byte is out must be finished: the server echoes
        // bytes, not messages, and half a message would never complete.
        let started = self.sent.div_ceil(size);
        let allowed = if sh.stopping {
            started
        } else {
            let mut allowed = self.received / size + sh.pipeline;
            if let Some(n) = sh.per_connection {
                allowed = allowed.min(n);
            }
            allowed.max(started)
        };
        allowed * size
    }

    /// Write what the pipeline allows, then close our side if nothing is left.
    fn send_and_maybe_finish(&mut self, sh: &mut Shared) -> Result<Next, Fault> {
        if self.role == Role::Idle || self.stage != Stage::Open {
            return Ok(Next::Keep);
        }
        self.send(sh)?;
        self.maybe_finish(sh)
    }

    /// Write the pattern up to the send goal, or until the kernel's buffer is full.
    fn send(&mut self, sh: &mut Shared) -> Result<(), Fault> {
        if self.write_blocked {
            return Ok(());
        }
        if self.tls.is_some() {
            return self.send_tls(sh);
        }
        let goal = self.send_goal(sh);
        // One clock read per burst of writes, taken only if a message starts in it
        // (see run.rs on why send times are read here and echo times per poll).
        let mut stamp: Option<Instant> = None;
        while self.sent < goal {
            let len = (goal - self.sent).min(sh.out.len() as u64) as usize;
            // Computing a chunk that the kernel then takes only part of wastes a
            // little work, but nothing needs to be kept between events.
            sh.pattern.fill(self.id, self.sent, &mut sh.out[..len]);
            match self.stream.write(&sh.out[..len]) {
                // write() of a non-empty buffer returning 0 cannot make progress.
                Ok(0) => {
                    return Err(self.fault(format_args!(
                        "write() accepted nothing at {}",
                        self.at(self.sent, sh)
                    )))
                }
                Ok(n) => {
                    let at = *stamp.get_or_insert_with(Instant::now);
                    self.wrote(n, at, sh);
                }
                // The socket's send buffer is full: the server is not reading as fast
                // as we write. A writable event will come when there is room again.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.write_blocked = true;
                    return Ok(());
                }
                // A signal interrupted the call before any byte moved: just retry.
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // A reset or broken pipe: the server is gone.
                Err(e) => {
                    return Err(self.fault(format_args!(
                        "{} while sending at {}",
                        describe(&e),
                        self.at(self.sent, sh)
                    )))
                }
            }
        }
        Ok(())
    }

    /// `n` more bytes of the stream went out at `at`: the messages whose first
    /// byte was among them are now in flight.
    fn wrote(&mut self, n: usize, at: Instant, sh: &mut Shared) {
        let size = sh.pattern.size();
        let end = self.sent + n as u64;
        for _ in self.sent.div_ceil(size)..end.div_ceil(size) {
            self.stamps.push_back(at);
        }
        self.sent = end;
        sh.stats.sent(n as u64);
    }

    /// If every message is sent and echoed and no more may start, send our FIN
    /// (with `--tls`, `close_notify` first).
    fn maybe_finish(&mut self, sh: &mut Shared) -> Result<Next, Fault> {
        let size = sh.pattern.size();
        let no_more = sh.stopping || sh.per_connection.is_some_and(|n| self.sent >= n * size);
        if self.stage != Stage::Open
            || !no_more
            || self.received < self.sent
            || self.sent < self.send_goal(sh)
        {
            return Ok(Next::Keep);
        }
        if !self.close_tls(sh)? {
            return Ok(Next::Keep);
        }
        // shutdown(Write) sends FIN but keeps reading: the server sees EOF, closes,
        // and its FIN (Ok(0) here) confirms it sent nothing more. Closing without
        // it would still be clean (nothing unread, so no reset), but would not
        // notice a server that leaks its side of the connection.
        match self.stream.shutdown(Shutdown::Write) {
            Ok(()) => {
                self.stage = Stage::Closing;
                Ok(Next::Keep)
            }
            Err(e) => Err(self.fault(format_args!(
                "{} while closing after {}",
                describe(&e),
                self.at(self.sent, sh)
            ))),
        }
    }

    /// The deadline has passed (`sh.stopping` is set): close now if nothing is in flight.
    pub fn on_stop(&mut self, sh: &mut Shared) -> Result<Next, Fault> {
        if self.role == Role::Active {
            self.maybe_finish(sh)
        } else {
            Ok(Next::Keep)
        }
    }

    /// Check the timeouts; called about once a second.
    pub fn check_timeouts(&self, now: Instant, sh: &Shared) -> Option<Fault> {
        let waited = now.saturating_duration_since(self.last_progress);
        match self.stage {
            Stage::Connecting if now.saturating_duration_since(self.started) > CONNECT_TIMEOUT => {
                Some(self.fault(format_args!(
                    "connect timed out after {} (the SYN got no answer)",
                    units::secs(CONNECT_TIMEOUT)
                )))
            }
            Stage::Handshaking if now.saturating_duration_since(self.started) > CONNECT_TIMEOUT => {
                let after = units::secs(CONNECT_TIMEOUT);
                Some(self.fault(format_args!("{}", progjar::tls::handshake_timed_out(&after))))
            }
            Stage::Open if self.received < self.sent && waited > sh.lost_after() => {
                Some(self.fault(format_args!(
                    "no echo byte for {} (twice --echo-timeout {}): {} lost from {}",
                    units::secs(sh.lost_after()),
                    units::secs(sh.echo_timeout),
                    units::plural(self.sent - self.received, "byte"),
                    self.at(self.received, sh)
                )))
            }
            Stage::Closing if waited > sh.echo_timeout => Some(self.fault(format_args!(
                "the server did not close its side within {} of ours (does it close on EOF?)",
                units::secs(sh.echo_timeout)
            ))),
            _ => None,
        }
    }
}
