//! progjar: a teaching toolkit for the network-programming lab.
//!
//! The course ("Pemrograman Jaringan") starts with four tasks: print socket
//! information, run an echo server on one machine and a client on another,
//! send a file, and serve two clients at once. Its Python server serves one
//! client at a time and its file client hangs waiting for an EOF that never
//! comes. progjar does the same tasks, with the same port (10000), message and
//! log words, and fixes both: the server multiplexes every client in one
//! readiness loop, and the client half-closes and verifies the echo.
//!
//! Read it in this order: `server/mod.rs` (the loop), `connection.rs` (one
//! client's bytes), then `client/`. Each file starts by saying why it exists.
//!
//! # Layout
//!
//! The echo server, one concept per file:
//! - [`server`]: the event loop. Owns the `mio::Poll`, the listener, the
//!   `slab::Slab` of connections (a connection's key is its `mio::Token`) and
//!   accepting; refuses clients over the limits; turns signals into a graceful
//!   shutdown. The whole loop fits on one screen in `Server::run` (`mod.rs`);
//!   beside it `accept.rs` (accepting and admitting), `timers.rs` (idle
//!   timeouts, signals, grace, the summary), `listen.rs` (binding, the
//!   open-file limit) and `loops.rs` (`--loops N`: N copies of the loop on
//!   their own threads, each with its own `SO_REUSEPORT` listener).
//! - [`connection`]: one client: its socket, its unsent bytes (bounded, never
//!   dropped) and the readiness it asks for. Read, echo, backpressure,
//!   half-close.
//! - [`idle`]: `--idle-timeout` as a list in order of last activity, so
//!   expiring connections costs O(1), never a scan.
//! - [`memory`]: `--max-pending-total`, the memory all clients' unsent bytes
//!   share, its default from the process's memory limit, and who waits for it.
//! - [`access`]: who is let in (`--allow` networks, `--max-connections`,
//!   `--max-per-ip` per address or IPv6 /64, counted over all loops), and each
//!   [`access::Refusal`]'s count and words.
//! - [`throttle`]: a short log under floods: warnings at most once a second,
//!   per-connection lines at most 100 a second with the rest counted.
//! - [`limits`]: raising the open-file limit, since each client is a descriptor.
//! - [`signals`]: SIGINT/SIGTERM/SIGHUP as events of the loop, each one counted.
//! - [`record`]: `--record FILE`, one line per wake-up of the loop, written
//!   by a thread of its own; nothing but an `Option` check when off.
//!
//! The other commands:
//! - [`client`]: the blocking `std::net` client, one file per step in
//!   `src/client/`: the servers to visit (`HOST:PORT`, in turn or in
//!   parallel), the payload source, connecting, the exchange (a writer thread
//!   sends and half-closes while the main thread reads), the checker, the
//!   `--output` file, Ctrl-C, and the verdict that both the summary line and
//!   the exit status come from.
//! - [`info`]: the course's task 1 as one report: hostname, interfaces, DNS
//!   lookup and socket timeouts.
//! - [`timeline`]: `progjar record-page`, a recording read back into one lane
//!   per client; [`record_page`] draws it as an HTML page with inline SVG.
//! - [`tls`]: TLS for every command, one file each in `src/tls/`: the crypto
//!   provider, certificate and key files, what a certificate says in words, what
//!   a client trusts (`--ca`, `--insecure`), a refused certificate as one
//!   sentence, and `progjar cert` (a CA and a server certificate it signs).
//! - [`resolve`]: names to addresses (getaddrinfo, with a time bound), and this
//!   machine's hostname, interfaces and routes: the only place that asks.
//!
//! Shared by the binaries (`progjar`, and `progjar-stress` in `tools/stress`):
//! - [`cli`]: the exit codes, one-line errors, `--version`, arguments of any
//!   bytes and quiet exits on a closed pipe, for argh command lines.
//! - [`parse`]: sizes (`64KiB`), durations (`500ms`), ports and counts on the
//!   command line.
//! - [`logging`]: the course's `INFO:module:message` log format on stderr; the
//!   server's lines go through a bounded queue, so its loop never waits on stderr;
//!   a line from one of several loops names it.
//! - [`preview`]: bytes shown as Python shows them, `b'...'`.
//! - [`sock`]: what a socket error means and when a read may stop early,
//!   written once for the server, the client and the stress tool.
//!
//! `main.rs` only parses arguments, starts logging and calls [`server::run`],
//! [`client::run`] or [`info::run`].

#![warn(missing_docs, missing_debug_implementations)]

pub mod access;
pub mod cli;
pub mod client;
pub mod connection;
pub mod idle;
pub mod info;
pub mod limits;
pub mod logging;
pub mod memory;
pub mod parse;
pub mod preview;
pub mod record;
pub mod record_page;
pub mod resolve;
pub mod server;
pub mod signals;
pub mod sock;
pub mod throttle;
pub mod timeline;
pub mod tls;
pub mod units;
