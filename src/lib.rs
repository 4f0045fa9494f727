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
//! Read it in this order: `event_loop/mod.rs` (the loop), `event_loop/service.rs`
//! (what the loop asks of a server built on it), `server/echo.rs` (one echo
//! client's bytes), `proxy/relay.rs` (a relayed client's two sockets), then
//! `client/`. Each file starts by saying why it exists.
//!
//! # Layout
//!
//! The folders show the architecture: a loop with no policy in it, and the
//! servers built on it.
//! - [`event_loop`]: the readiness loop's machinery, as redis's `ae.c` is
//!   apart from its clients: `mio::Poll`, the listener, the `slab::Slab` of
//!   connections (a connection's tokens come from its slab key), accepting
//!   and admission (`--allow`, `--max-connections`, `--max-per-ip`), the
//!   memory all connections' unsent bytes share (`--max-pending-total`),
//!   idle timeouts in O(1), a short log under floods, stopping by signal or
//!   from another thread (first graceful, then at once), `--loops N`. What a
//!   connection does with its bytes is a [`event_loop::Service`]'s
//!   [`event_loop::Handler`]. The whole loop fits on one screen in
//!   `EventLoop::run`.
//! - [`server`]: the echo server, the loop's first service: one client's
//!   socket, its unsent bytes (bounded, never dropped) and the readiness it
//!   asks for; read, echo, backpressure, half-close (`server/echo.rs`, the
//!   rules about unsent bytes in `server/pending.rs`), and the same through TLS
//!   (`server/tls_echo.rs`).
//! - [`proxy`]: `progjar proxy`, the course's relay in the middle, the loop's
//!   second service: one slab entry holding a client's socket and the real
//!   server's (`Handler::SOURCES` = 2), each a leg with the bytes it has not
//!   taken yet; backpressure, FINs and resets passed on both ways, a
//!   nonblocking connect bounded by a setup timeout, busy directions by
//!   `splice(2)`, the log in the course's words (`proxy/relay.rs`); with
//!   `--intercept-cert` a TLS session on each leg (`proxy/secure.rs`).
//! - [`recording`]: `--record FILE`, one line per wake-up of the loop, written
//!   by a thread of its own (nothing but an `Option` check when off), and
//!   `progjar record-page`, which reads it back in bounded memory and draws it
//!   as an HTML page with inline SVG: one folder that owns the format.
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
//! - [`tls`]: TLS for every command, one file each in `src/tls/`: the crypto
//!   provider, certificate and key files, what a certificate says in words, what
//!   a client trusts (`--ca`, `--insecure`), a refused certificate as one
//!   sentence, `progjar cert` (a CA and a server certificate it signs), and a
//!   TLS session on a readiness loop for either side (`tls/session.rs`).
//! - [`resolve`]: names to addresses (getaddrinfo, with a time bound), and this
//!   machine's hostname, interfaces and routes: the only place that asks.
//!
//! Shared by the binaries (`progjar`, and `progjar-stress` in `tools/stress`):
//! - [`cli`]: the exit codes, one-line errors, `--version`, arguments of any
//!   bytes and quiet exits on a closed pipe, for argh command lines.
//! - [`parse`]: sizes (`64KiB`), durations (`500ms`), ports, counts and
//!   `HOST:PORT` on the command line.
//! - [`logging`]: the course's `INFO:module:message` log format on stderr; the
//!   server's lines go through a [`background`] writer, so its loop never waits
//!   on stderr; a line from one of several loops names it.
//! - [`background`]: a lossy background writer, for the server's log and its
//!   recording: a queue of fixed size, a thread that waits on the output, what
//!   does not fit dropped and counted.
//! - [`preview`]: bytes shown as Python shows them, `b'...'`.
//! - [`sock`]: what a socket error means, when a read may stop early and
//!   what waits in a socket's kernel queues, written once for the server, the
//!   client and the stress tool.
//! - [`signals`]: SIGINT/SIGTERM/SIGHUP as events of a loop, each one counted,
//!   and the one stopping rule: the first request graceful, the next at once.
//! - [`limits`]: raising the open-file limit, since each client is a descriptor.
//! - [`units`]: numbers in words: grouped counts, binary sizes, rates.
//! - [`svg`]: the pages' kit: escaping, the 1-2-5 axis step, a time axis with
//!   ticks (the lab's Python page follows it in `tools/lab/svg.py`).
//!
//! `main.rs` only parses arguments (the binary's `command_line/`: argh structs,
//! one file per kind of command, the loop's options declared once for the
//! server and the proxy), starts logging and calls [`server::run`],
//! [`proxy::run`], [`client::run`], [`info::run`], [`tls::cert`] or
//! [`recording::command::run`].

#![warn(missing_docs, missing_debug_implementations)]

pub mod background;
pub mod cli;
pub mod client;
pub mod event_loop;
pub mod info;
pub mod limits;
pub mod logging;
pub mod parse;
pub mod preview;
pub mod proxy;
pub mod recording;
pub mod resolve;
pub mod server;
pub mod signals;
pub mod sock;
pub mod svg;
pub mod tls;
pub mod units;
