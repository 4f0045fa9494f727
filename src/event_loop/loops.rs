//! `--loops N`: N copies of the loop, each on a thread of its own, sharing
//! nothing a read or an echo touches.
//!
//! Each loop is the whole single-threaded server: its own `Poll`, slab, read
//! buffer, idle list, memory budget and listening socket (all on the same
//! address with `SO_REUSEPORT`, `listen.rs`). The kernel picks the loop of
//! each new connection, and a connection stays on it until it closes, so no
//! lock, atomic or queue sits between a read and its echo. The loops share
//! only the `--max-per-ip` counts, touched at accept and close (`admission.rs`).
//! Every loop has its own signal pipe and every signal writes a byte to each,
//! so one SIGTERM begins every loop's shutdown and no loop waits for another;
//! a loop that fails stops the others through their shared [`Stopper`].
//!
//! At shutdown each loop closes its listener, and Linux resets the
//! connections still waiting in that listener's accept queue, as one loop
//! does with its one queue (unless `net.ipv4.tcp_migrate_req` is 1: then they
//! move to a listener of the group still open). The loops get the signal
//! within microseconds of each other, so more loops lose nothing more.
//!
//! With one loop (the default) it runs on the calling thread.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::thread::{self, JoinHandle};

use log::{info, warn};

use super::listen::{bind_loops, failure, Start};
use super::{Config, EventLoop, Service, Stopper, Summary};
use crate::cli::{Failure, EXIT_FAILURE, EXIT_INTERRUPTED};
use crate::logging;
use crate::signals::Stop;

/// Run a server on the loop as a program: bind, print `listening on
/// ADDR:PORT`, serve until a signal (the first graceful, the second at once).
/// The `progjar` binary's one call per server.
pub fn run<S: Service>(config: Config, service: S) -> Result<(), Failure> {
    let n = loop_count(config.loops);
    let stopper = Stopper::new();
    let loops = bind_loops(config, n, Start { service, stopper: &stopper, signals: true })?;
    let addr = local_addr(&loops)?;
    info!(target: S::LOG, "starting up on {addr}");
    if n > 1 {
        info!(target: S::LOG, "{n} loops, each on its own thread with its own listener (SO_REUSEPORT)");
    }
    // The one line scripts and tests read; flushed so a pipe sees it at once.
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "listening on {addr}").and_then(|()| stdout.flush());
    drop(stdout);
    let summary = serve(loops, &stopper)?;
    if summary.forced {
        return Err(Failure::new(EXIT_INTERRUPTED, "stopped at once by a second signal"));
    }
    Ok(())
}

/// A server on the loop running in threads of this process, started by [`spawn`].
#[derive(Debug)]
pub struct Running {
    /// The address it listens on (with the real port when 0 was asked).
    pub addr: SocketAddr,
    /// Asks it to stop, gracefully or at once.
    pub stopper: Stopper,
    thread: JoinHandle<Result<Summary, Failure>>,
}

impl Running {
    /// Stop gracefully (the open connections get `--grace`) and wait for the end.
    pub fn stop(self) -> Result<Summary, Failure> {
        self.stopper.request(Stop::Graceful);
        self.thread.join().unwrap_or_else(|_| Err(Failure::new(EXIT_FAILURE, "a loop panicked")))
    }
}

/// Start a server on the loop in threads of this process, without touching
/// the process's signals: for tests and programs that embed one. Everything
/// else is as [`run`] does it, `--record` included.
pub fn spawn<S: Service>(config: Config, service: S) -> Result<Running, Failure> {
    let n = loop_count(config.loops);
    let stopper = Stopper::new();
    let loops = bind_loops(config, n, Start { service, stopper: &stopper, signals: false })?;
    let addr = local_addr(&loops)?;
    let group = stopper.clone();
    // Not named `loop N`: with one loop its lines read as the binary's do.
    let thread = thread::Builder::new()
        .name("server".into())
        .spawn(move || serve(loops, &group))
        .map_err(|e| failure("cannot start the loop's thread", &e))?;
    Ok(Running { addr, stopper, thread })
}

/// The address the loops listen on (they all share it).
fn local_addr<S: Service>(loops: &[EventLoop<S>]) -> Result<SocketAddr, Failure> {
    let addr = loops.first().map_or(Err(io::ErrorKind::NotConnected.into()), EventLoop::local_addr);
    addr.map_err(|e| failure("cannot read the bound address", &e))
}

/// Run the loops: one on this thread, several on threads of their own.
fn serve<S: Service>(mut loops: Vec<EventLoop<S>>, stopper: &Stopper) -> Result<Summary, Failure> {
    match loops.pop() {
        Some(one) if loops.is_empty() => one.run().map_err(|e| failure("event loop failed", &e)),
        Some(last) => {
            loops.push(last);
            run_threads(loops, stopper)
        }
        None => Err(Failure::new(EXIT_FAILURE, "no loop to run")),
    }
}

/// `--loops`: 0 means one per core this process may run on.
fn loop_count(loops: usize) -> usize {
    match loops {
        0 => thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Run each loop on a thread named `loop 1`, `loop 2`, ... (the name the log
/// lines carry), wait for all of them and log their summaries added up. A
/// loop that fails asks the others to stop, gracefully.
fn run_threads<S: Service>(
    loops: Vec<EventLoop<S>>,
    stopper: &Stopper,
) -> Result<Summary, Failure> {
    let mut threads = Vec::with_capacity(loops.len());
    let mut failed = None;
    for (i, event_loop) in loops.into_iter().enumerate() {
        let group = stopper.clone();
        let spawned = thread::Builder::new().name(logging::loop_thread(i + 1)).spawn(move || {
            let result = event_loop.run();
            if let Err(e) = &result {
                warn!(target: S::LOG, "event loop failed: {e}; stopping the other loops");
                group.request(Stop::Graceful);
            }
            result
        });
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                failed = Some(failure("cannot start a loop's thread", &e));
                stopper.request(Stop::Graceful);
                break;
            }
        }
    }
    let mut total = Summary { verb: S::VERB, ..Summary::default() };
    for thread in threads {
        match thread.join() {
            Ok(Ok(summary)) => total.add(&summary),
            Ok(Err(e)) => failed = failed.or_else(|| Some(failure("event loop failed", &e))),
            Err(_) => {
                failed = failed.or_else(|| Some(Failure::new(EXIT_FAILURE, "a loop panicked")))
            }
        }
    }
    info!(target: S::LOG, "{}", total.line());
    match failed {
        Some(failure) => Err(failure),
        None => Ok(total),
    }
}
