//! Ctrl-C (SIGINT): stop the exchange, print the summary so far, exit 130.
//! SIGTERM and SIGHUP (the terminal closed) do the same, so that no stop by a
//! signal leaves `--output`'s temporary file behind (`echo_file.rs`).
//!
//! The client blocks in `read()` and `write()` on std sockets, so a flag alone
//! would be seen only when a read times out (seconds later). Instead a thread
//! waits for the signal (on the server's own [`SignalPipe`]: the handler only
//! writes a byte, which is async-signal-safe) and shuts down every socket being
//! exchanged on. `shutdown()` wakes both blocked calls at once: the reader's
//! `read` returns 0 and the writer's `write` fails. The exchange then ends the
//! usual way, and the verdict, seeing [`interrupted`], says so.
//!
//! Before a socket exists (resolving, connecting) there is nothing to report:
//! the thread exits 130 at once, and so does a second Ctrl-C; what came back
//! so far is kept as `FILE.partial` first.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::thread;

use libc::c_int;

use super::echo_file;
use crate::cli::{Failure, EXIT_FAILURE, EXIT_INTERRUPTED};
use crate::signals::SignalPipe;

/// The sockets being exchanged on, and the signal that stopped them, if any.
struct State {
    signal: Option<c_int>,
    next_id: u64,
    sockets: Vec<(u64, TcpStream)>,
}

static STATE: Mutex<State> = Mutex::new(State { signal: None, next_id: 0, sockets: vec![] });

/// A poisoned lock only means another thread panicked holding it; the list is still valid.
fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Start listening for SIGINT, SIGTERM and SIGHUP (once per process).
pub(super) fn install() -> Result<(), Failure> {
    let fail = |e: io::Error| Failure::new(EXIT_FAILURE, format!("cannot watch for Ctrl-C: {e}"));
    let signals = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
    let mut signals = SignalPipe::new(&signals).map_err(fail)?;
    thread::Builder::new()
        .name("sigint".into())
        .spawn(move || {
            // Bounded: every signal either stops the process or shuts the sockets.
            while let Ok(signal) = signals.wait() {
                on_signal(signal);
            }
        })
        .map_err(fail)?;
    Ok(())
}

fn on_signal(signal: c_int) {
    let mut state = state();
    if state.signal.is_some() || state.sockets.is_empty() {
        drop(state);
        let kept = echo_file::keep_partials();
        let kept = match kept.as_slice() {
            [] => String::new(),
            names => format!("; what came back is in {}", names.join(", ")),
        };
        let _ = writeln!(io::stderr(), "progjar: interrupted ({}){kept}", name(signal));
        std::process::exit(EXIT_INTERRUPTED.into());
    }
    state.signal = Some(signal);
    for (_, socket) in &state.sockets {
        let _ = socket.shutdown(Shutdown::Both);
    }
}

/// A signal stopped the exchanges.
pub(super) fn interrupted() -> bool {
    state().signal.is_some()
}

/// The signal that stopped the exchanges, as a student knows it, if one did.
pub(super) fn stopped_by() -> Option<&'static str> {
    state().signal.map(name)
}

fn name(signal: c_int) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "Ctrl-C",
    }
}

/// While alive, Ctrl-C shuts down the watched socket; dropping it stops watching.
pub(super) struct Watch(u64);

/// Watch `stream` (a clone of it: the exchange keeps its own). If Ctrl-C came
/// already (another server, with `--parallel`), it is shut down at once.
pub(super) fn watch(stream: &TcpStream) -> io::Result<Watch> {
    let clone = stream.try_clone()?;
    let mut state = state();
    if state.signal.is_some() {
        let _ = clone.shutdown(Shutdown::Both);
    }
    let id = state.next_id;
    state.next_id += 1;
    state.sockets.push((id, clone));
    Ok(Watch(id))
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Dropping the clone closes its descriptor, so the connection can close fully.
        state().sockets.retain(|(id, _)| *id != self.0);
    }
}
