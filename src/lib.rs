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
//! Read it in this order: `server.rs` (the loop), `connection.rs` (one
//! client's bytes), then `client.rs`. Each file starts by saying why it exists.
//!
//! # Layout
//!
//! The echo server, one concept per file:
//! - [`server`]: the event loop. Owns the `mio::Poll`, the listener, the
//!   `slab::Slab` of connections (a connection's key is its `mio::Token`) and
//!   accepting; refuses clients over the limits; turns signals into a graceful
//!   shutdown. The whole loop fits on one screen in `Server::run`.
//! - [`connection`]: one client: its socket, its unsent bytes (bounded, never
//!   dropped) and the readiness it asks for. Read, echo, backpressure,
//!   half-close.
//! - [`idle`]: `--idle-timeout` as a list in order of last activity, so
//!   expiring connections costs O(1), never a scan.
//! - [`access`]: `--allow` networks (CIDR), IPv4 and IPv6.
//! - [`throttle`]: warnings about floods at most once a second.
//! - [`limits`]: raising the open-file limit, since each client is a descriptor.
//! - [`signals`]: SIGINT/SIGTERM/SIGHUP as events of the loop, each one counted.
//!
//! The other commands:
//! - [`client`]: the blocking `std::net` client: a writer thread sends and
//!   half-closes while the main thread reads and verifies the echo.
//! - [`info`]: hostname, interfaces, DNS lookup (getaddrinfo) and socket
//!   timeouts: the course's task 1.
//!
//! Shared by the binaries (`progjar`, and `progjar-stress` in `tools/stress`):
//! - [`cli`]: one-line errors and exit codes for argh command lines.
//! - [`parse`]: sizes (`64KiB`) and durations (`500ms`) on the command line.
//! - [`logging`]: the course's `INFO:module:message` log format on stderr; the
//!   server's lines go through a bounded queue, so its loop never waits on stderr.
//! - [`preview`]: bytes shown as Python shows them, `b'...'`.
//!
//! `main.rs` only parses arguments, starts logging and calls [`server::run`],
//! [`client::run`] or [`info::run`].

pub mod access;
pub mod cli;
pub mod client;
pub mod connection;
pub mod idle;
pub mod info;
pub mod limits;
pub mod logging;
pub mod parse;
pub mod preview;
pub mod server;
pub mod signals;
pub mod throttle;
