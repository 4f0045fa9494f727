//! `--loops N`: N copies of the loop, each on a thread of its own, sharing
//! nothing a read or an echo touches.
//!
//! Each loop is the whole single-threaded server: its own `Poll`, slab, read
//! buffer, idle list, memory budget and listening socket (all on the same
//! address with `SO_REUSEPORT`, `listen.rs`). The kernel picks the loop of
//! each new connection, and a connection stays on it until it closes, so no
//! lock, atomic or queue sits between a read and its echo. The loops share
//! only the `--max-per-ip` counts, touched at accept and close (`access.rs`).
//! Every loop has its own signal pipe and every signal writes a byte to each,
//! so one SIGTERM begins every loop's shutdown and no loop waits for another.
//!
//! At shutdown each loop closes its listener, and Linux resets the
//! connections still waiting in that listener's accept queue, as one loop
//! does with its one queue (unless `net.ipv4.tcp_migrate_req` is 1: then they
//! move to a listener of the group still open). The loops get the signal
//! within microseconds of each other, so more loops lose nothing more.
//!
//! With one loop (the default) it runs on the main thread, exactly as before.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::thread;

use log::{info, warn};

use super::listen::{bind_failure, failure};
use super::{Config, Server, Summary};
use crate::cli::{Failure, EXIT_FAILURE, EXIT_INTERRUPTED};
use crate::logging;
use crate::recording::Options;

/// Run `progjar server`: bind, print `listening on ADDR:PORT`, serve until a signal.
pub fn run(config: Config) -> Result<(), Failure> {
    let n = loop_count(config.loops);
    let wanted = SocketAddr::new(config.bind, config.port);
    let record = config.record.clone();
    let mut loops = Server::bind_loops(config, n).map_err(|e| bind_failure(&e, wanted))?;
    for (i, server) in loops.iter_mut().enumerate() {
        // Opened before `listening on`: a path that cannot be written stops here.
        server.start_recording(record.as_ref().map(|o| per_loop(o, i + 1, n)).as_ref())?;
    }
    for server in &mut loops {
        server.handle_signals().map_err(|e| failure("cannot install signal handlers", &e))?;
    }
    let addr = loops.first().map_or(Err(io::ErrorKind::NotConnected.into()), Server::local_addr);
    let addr = addr.map_err(|e| failure("cannot read the bound address", &e))?;
    info!("starting up on {addr}");
    if n > 1 {
        info!("{n} loops, each on its own thread with its own listener (SO_REUSEPORT)");
    }
    // The one line scripts and tests read; flushed so a pipe sees it at once.
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "listening on {addr}").and_then(|()| stdout.flush());
    drop(stdout);
    let summary = match loops.pop() {
        Some(server) if loops.is_empty() => {
            server.run().map_err(|e| failure("event loop failed", &e))?
        }
        Some(last) => {
            loops.push(last);
            run_threads(loops)?
        }
        None => return Err(Failure::new(EXIT_FAILURE, "no loop to run")),
    };
    if summary.forced {
        return Err(Failure::new(EXIT_INTERRUPTED, "stopped at once by a second signal"));
    }
    Ok(())
}

/// Loop `k` of `n` records into `FILE.k` when there are several: one file per
/// thread, each a recording of one loop.
fn per_loop(options: &Options, k: usize, n: usize) -> Options {
    let mut options = options.clone();
    if n > 1 {
        let mut path = options.path.into_os_string();
        path.push(format!(".{k}"));
        options.path = path.into();
    }
    options
}

/// `--loops`: 0 means one per core this process may run on.
fn loop_count(loops: usize) -> usize {
    match loops {
        0 => thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Run each loop on a thread named `loop 1`, `loop 2`, ... (the name the log
/// lines carry), wait for all of them and log their summaries added up.
fn run_threads(loops: Vec<Server>) -> Result<Summary, Failure> {
    let mut threads = Vec::with_capacity(loops.len());
    let mut failed = None;
    for (i, server) in loops.into_iter().enumerate() {
        let spawned = thread::Builder::new().name(logging::loop_thread(i + 1)).spawn(move || {
            let result = server.run();
            if let Err(e) = &result {
                warn!("event loop failed: {e}; stopping the other loops");
                stop_all();
            }
            result
        });
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                failed = Some(failure("cannot start a loop's thread", &e));
                stop_all();
                break;
            }
        }
    }
    let mut total = Summary::default();
    for thread in threads {
        match thread.join() {
            Ok(Ok(summary)) => total.add(&summary),
            Ok(Err(e)) => failed = failed.or_else(|| Some(failure("event loop failed", &e))),
            Err(_) => {
                failed = failed.or_else(|| Some(Failure::new(EXIT_FAILURE, "a loop panicked")))
            }
        }
    }
    info!("{}", total.line());
    match failed {
        Some(failure) => Err(failure),
        None => Ok(total),
    }
}

/// Begin every loop's graceful shutdown, as a SIGTERM from outside would:
/// the one way to reach all loops without a channel any of them must poll.
fn stop_all() {
    // SAFETY: kill(2) with our own pid only sends a signal; it touches no memory.
    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
}
