//! Signals as events of a loop, counted one by one, and the one rule for
//! stopping: the first request is graceful, the second is now.
//!
//! A signal handler interrupts the loop anywhere, so it may do almost nothing
//! (no lock, no allocation, no log line). The classic answer is the self-pipe:
//! the handler writes a byte to a socket the loop polls, and the loop does the
//! real work later as an ordinary event. signal-hook's `Signals` does that but
//! keeps one flag per signal, so two SIGTERMs that arrive before the loop looks
//! read as one. Here the byte *is* the signal (its number): the loop reads one
//! byte per signal delivered, and a second SIGTERM delivered is never lost.
//!
//! What no program can count: the kernel keeps at most one of each standard
//! signal pending, so a second SIGTERM sent before the first was delivered
//! merges into it, and the process gets one. "Two sent back to back" are two
//! only if the first was delivered before the second was sent.
//!
//! With `--loops N` each loop makes a pipe of its own: signal-hook-registry
//! runs every handler registered for a signal, so each signal is one byte in
//! every loop's pipe and no loop has to wake another.

use std::io::{self, ErrorKind, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use libc::c_int;
use mio::event::Source;
use mio::net::UnixStream;
use mio::{Interest, Registry, Token};
use signal_hook_registry::SigId;

/// Receives the signals it was created for as readable bytes (see the module doc).
#[derive(Debug)]
pub struct SignalPipe {
    read: UnixStream,
    handlers: Vec<SigId>,
}

impl SignalPipe {
    /// Install a handler for each of `signals` that writes the signal's number
    /// to this pipe.
    pub fn new(signals: &[c_int]) -> io::Result<SignalPipe> {
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        read.set_nonblocking(true)?;
        let write = Arc::new(OwnedFd::from(write));
        let mut pipe = SignalPipe { read: UnixStream::from_std(read), handlers: Vec::new() };
        for &signal in signals {
            let write = Arc::clone(&write);
            let byte = u8::try_from(signal).map_err(|_| ErrorKind::InvalidInput)?;
            let handler = move || {
                // Only async-signal-safe calls here: one send that never
                // blocks (a full pipe already holds plenty of signals) and
                // never raises SIGPIPE. signal-hook-registry keeps errno.
                // SAFETY: a one-byte send from a live buffer on a descriptor
                // this closure owns (through the Arc) for as long as it exists.
                unsafe {
                    libc::send(
                        write.as_raw_fd(),
                        (&byte as *const u8).cast(),
                        1,
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                };
            };
            // SAFETY: the handler only calls send(2), which is async-signal-safe.
            let id = unsafe { signal_hook_registry::register(signal, handler) }?;
            pipe.handlers.push(id);
        }
        Ok(pipe)
    }

    /// Block until the next signal arrives: for a thread that waits for
    /// nothing else (the client's Ctrl-C watcher, `client/interrupt.rs`).
    pub fn wait(&mut self) -> io::Result<c_int> {
        let mut poll = mio::Poll::new()?;
        poll.registry().register(self, Token(0), Interest::READABLE)?;
        let mut events = mio::Events::with_capacity(1);
        loop {
            if let Some(signal) = self.take() {
                return Ok(signal);
            }
            match poll.poll(&mut events, None) {
                Err(e) if e.kind() != ErrorKind::Interrupted => return Err(e),
                _ => {}
            }
        }
    }

    /// The next signal received, oldest first; `None` once all were read.
    pub fn take(&mut self) -> Option<c_int> {
        let mut byte = [0u8];
        loop {
            match self.read.read(&mut byte) {
                Ok(1) => return Some(c_int::from(byte[0])),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // WouldBlock: all read. Anything else cannot happen on a
                // socket pair whose other end we hold, and is no signal.
                _ => return None,
            }
        }
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        for &id in &self.handlers {
            signal_hook_registry::unregister(id);
        }
    }
}

impl Source for SignalPipe {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.read.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.read.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.read.deregister(registry)
    }
}

/// The usual name of the signals the server handles, for log lines.
pub fn name(signal: c_int) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// How a program stops when asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// Finish what was started, start nothing new (the server: no new clients,
    /// the open ones get `--grace` to finish; the stress tool: no new message).
    Graceful,
    /// Stop at once (exit 130).
    Now,
}

/// The rule every progjar program keeps (the server, its loops, the stress
/// tool): the first request to stop is graceful, any later one stops at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct Escalation {
    requests: u8,
}

impl Escalation {
    /// One more request to stop: what it means now.
    pub fn request(&mut self) -> Stop {
        self.requests = self.requests.saturating_add(1);
        self.now()
    }

    /// How many requests came so far (0: none).
    pub fn requests(&self) -> u8 {
        self.requests
    }

    fn now(&self) -> Stop {
        if self.requests > 1 {
            Stop::Now
        } else {
            Stop::Graceful
        }
    }
}
