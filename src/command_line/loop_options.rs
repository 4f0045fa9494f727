//! The command lines of the servers on the event loop, `progjar server` and
//! `progjar proxy`: the options they share, declared once, and what each
//! adds.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;
use progjar::event_loop::admission::Cidr;
use progjar::{cli, client, event_loop, proxy, server};

use super::parsers::*;

/// The options of a server on the event loop (`server`, `proxy`), declared
/// once: argh has no `flatten`, so this macro writes the same fields, with the
/// same help and parsers, into each command's struct after the command's own
/// fields, and gives the struct `loop_options`, which [`loop_config`] turns
/// into the loop's `Config`. Only two help texts differ between commands, so
/// they are given: the port's (each command has its default port) and the
/// grace time's (what is left to flush). A command's own field is written
/// `name: Type` or `name: Type<Inner>`: argh sees `Option` only as a word
/// of the type it is given, not inside a macro's opaque `ty`.
macro_rules! on_the_loop {
    (
        $(#[$meta:meta])*
        struct $name:ident {
            port_help: $port_help:tt,
            grace_help: $grace_help:tt,
            $($(#[$own_meta:meta])* $own:ident: $own_ty:ident $(<$own_arg:ty>)?,)*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$own_meta])* $own: $own_ty $(<$own_arg>)?,)*
    /// address to bind: 0.0.0.0 for every IPv4 address, :: for IPv6 and IPv4,
    /// or a name such as localhost; a port may follow, written as for the
    /// client: 127.0.0.1:10000, [::1]:10000 (default 0.0.0.0)
    #[argh(option, default = "(IpAddr::from([0, 0, 0, 0]), None)", from_str_fn(parse_bind))]
    bind: (IpAddr, Option<u16>),
    #[doc = $port_help]
    #[argh(option, from_str_fn(parse_port))]
    port: Option<u16>,
    /// bytes asked of each read(); 32 reproduces the course server's pieces
    /// (default 64KiB)
    #[argh(option, default = "64 * 1024", from_str_fn(parse_read_size))]
    read_size: usize,
    /// most connections served at once; more are closed at accept (default 10000,
    /// lowered to fit the open-file limit)
    #[argh(option, default = "10000", from_str_fn(parse_count))]
    max_connections: usize,
    /// listen backlog: connections the kernel queues before we accept them (default 1024)
    #[argh(option, default = "1024", from_str_fn(parse_backlog))]
    backlog: u32,
    /// unsent bytes one connection may hold before the server stops reading it
    /// (default 4MiB; accepts suffixes K, KiB, M, MiB)
    #[argh(option, default = "4 * 1024 * 1024", from_str_fn(parse_pending))]
    max_pending: usize,
    /// unsent bytes all connections may hold together; while they do, clients
    /// owed bytes are not read (those owed nothing still are) (default: half the
    /// process's memory limit, from the cgroup or RLIMIT_AS, else a quarter of
    /// physical memory; logged at start)
    #[argh(option, from_str_fn(parse_pending))]
    max_pending_total: Option<usize>,
    /// close connections whose client neither sent nor accepted a byte for this
    /// long, e.g. 30 or 1.5s or 500ms (default off)
    #[argh(option, from_str_fn(parse_duration))]
    idle_timeout: Option<Duration>,
    #[doc = $grace_help]
    #[argh(option, default = "Duration::from_secs(5)", from_str_fn(parse_duration))]
    grace: Duration,
    /// accept clients only from this network, e.g. 127.0.0.0/8 or ::1/128;
    /// repeat for more (default: everyone)
    #[argh(option, from_str_fn(parse_cidr))]
    allow: Vec<Cidr>,
    /// most connections open at once from one IP address (default no limit)
    #[argh(option, from_str_fn(parse_count))]
    max_per_ip: Option<usize>,
    /// bits of an IPv6 address that --max-per-ip counts as one client, since one
    /// host is usually given a whole /64; IPv4 counts per address (default 64)
    #[argh(option, default = "64", from_str_fn(parse_prefix6))]
    per_ip_prefix6: u8,
    /// event loops, each on its own thread with its own listener on the port
    /// (SO_REUSEPORT); 0 means one per core. --max-connections and
    /// --max-pending-total are split between them, --max-per-ip counts over
    /// all of them (default 1: one thread, as above)
    #[argh(option, default = "1", from_str_fn(parse_loops))]
    loops: usize,
    /// write one line per wake-up of the loop to this file (events, reads and
    /// writes with byte counts, interest changes); draw it with `progjar
    /// record-page`. A FIFO nobody reads yet is opened when a reader comes
    /// (the server serves meanwhile, with a warning)
    #[argh(option)]
    record: Option<String>,
    /// stop recording, with a note in the file, past this many bytes (default 16MiB)
    #[argh(option, default = "progjar::recording::DEFAULT_LIMIT", from_str_fn(parse_record_limit))]
    record_limit: usize,
        }

        impl $name {
            /// The loop's options, apart from the command's own.
            pub fn loop_options(&self) -> LoopOptions {
                LoopOptions {
                    bind: self.bind,
                    port: self.port,
                    read_size: self.read_size,
                    max_connections: self.max_connections,
                    backlog: self.backlog,
                    max_pending: self.max_pending,
                    max_pending_total: self.max_pending_total,
                    idle_timeout: self.idle_timeout,
                    grace: self.grace,
                    allow: self.allow.clone(),
                    max_per_ip: self.max_per_ip,
                    per_ip_prefix6: self.per_ip_prefix6,
                    loops: self.loops,
                    record: self.record.clone(),
                    record_limit: self.record_limit,
                }
            }
        }
    };
}

/// The loop's options as parsed, whichever command they came with.
pub struct LoopOptions {
    bind: (IpAddr, Option<u16>),
    port: Option<u16>,
    read_size: usize,
    max_connections: usize,
    backlog: u32,
    max_pending: usize,
    max_pending_total: Option<usize>,
    idle_timeout: Option<Duration>,
    grace: Duration,
    allow: Vec<Cidr>,
    max_per_ip: Option<usize>,
    per_ip_prefix6: u8,
    loops: usize,
    record: Option<String>,
    record_limit: usize,
}

on_the_loop! {
    /// Run the echo server: one thread, one mio event loop, thousands of clients.
    ///
    /// The first line on stdout is `listening on ADDR:PORT`. SIGINT, SIGTERM and
    /// SIGHUP (the terminal closed) stop accepting and let open connections finish
    /// (up to --grace), then exit 0; a second signal stops at once with status 130.
    /// Logs never slow the server: if stderr is not read, lines are dropped and
    /// counted. --loops N runs N such loops on N threads. More in docs/server.md.
    #[derive(FromArgs)]
    #[argh(subcommand, name = "server", help_triggers("-h", "--help"))]
    struct ServerArgs {
        port_help: "port to listen on; 0 picks a free one (default 10000, or the port written in --bind)",
        grace_help: "how long a shutdown waits for open connections to finish and their echoes to flush before closing them (default 5s)",
        /// serve TLS with this certificate (PEM, e.g. server.crt from `progjar
        /// cert`; a chain allowed); needs --tls-key
        #[argh(option)]
        tls_cert: Option<String>,
        /// the private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1)
        #[argh(option)]
        tls_key: Option<String>,
        /// with TLS: close a client whose handshake has not finished after this
        /// long, e.g. 5 or 500ms (default 5s)
        #[argh(option, from_str_fn(parse_duration))]
        handshake_timeout: Option<Duration>,
    }
}

on_the_loop! {
    /// Relay clients to a real server and log what passes: the course's man in the middle.
    ///
    /// The first line on stdout is `listening on ADDR:PORT` (port 15000 by
    /// default, the course's). Each client gets a connection of its own to --to
    /// and its bytes go both ways as they come, each piece logged in the
    /// course's words (`received data from client b'...'`); a FIN from either
    /// side is passed on (shutdown SHUT_WR), a reset resets the other side, and a
    /// realserver that refuses or does not answer resets the client. With
    /// --intercept-cert it answers each client's TLS itself and reads what a
    /// client that does not check certificates sends. Signals, --loops,
    /// --record and every bound work as for the server. More in docs/proxy.md.
    #[derive(FromArgs)]
    #[argh(subcommand, name = "proxy", help_triggers("-h", "--help"))]
    struct ProxyArgs {
        port_help: "port to listen on; 0 picks a free one (default 15000, the course's proxy port, or the port written in --bind)",
        grace_help: "how long a shutdown waits for open connections to finish and their unsent bytes to flush before closing them (default 5s)",
        /// the real server every client is relayed to: HOST:PORT or
        /// [IPv6]:PORT, looked up once at start (required)
        #[argh(option, from_str_fn(parse_to))]
        to: Option<client::Target>,
        /// how long the real server may take to accept a client's connection
        /// before the client is reset, e.g. 3 or 500ms (default 10s)
        #[argh(option, default = "proxy::DEFAULT_CONNECT_TIMEOUT", from_str_fn(parse_duration))]
        connect_timeout: Duration,
        /// relay busy connections with read() and write() through the
        /// proxy's memory instead of splice(2) from socket to socket, e.g. to
        /// compare the two (Linux splices; elsewhere it is always so)
        #[argh(switch)]
        no_splice: bool,
        /// intercept TLS: answer each client's TLS with this certificate (PEM,
        /// e.g. server.crt of a second `progjar cert` directory) and read what
        /// it sends, on the proxy's own TLS to --to (whose certificate is not
        /// checked); needs --intercept-key. A lab tool: see docs/proxy.md
        #[argh(option)]
        intercept_cert: Option<String>,
        /// the private key of --intercept-cert (PEM: PKCS#8, PKCS#1 or SEC1)
        #[argh(option)]
        intercept_key: Option<String>,
    }
}

/// The port to listen on: `--port`, or the one written in `--bind` (both must
/// agree), or the command's `default`.
pub fn listen_port(bind: Option<u16>, port: Option<u16>, default: u16) -> u16 {
    match (bind, port) {
        (Some(b), Some(p)) if b != p => cli::usage_error(&format!(
            "--bind names port {b} and --port names port {p}; give the port once"
        )),
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => default,
    }
}

/// The loop's `Config` from its options, for any command that runs a loop;
/// `default_port` is the command's own (10000 for the server, 15000 for the proxy).
pub fn loop_config(o: LoopOptions, default_port: u16) -> event_loop::Config {
    event_loop::Config {
        bind: o.bind.0,
        port: listen_port(o.bind.1, o.port, default_port),
        read_size: o.read_size,
        max_connections: o.max_connections,
        backlog: o.backlog,
        max_pending: o.max_pending,
        max_pending_total: o.max_pending_total,
        idle_timeout: o.idle_timeout,
        grace: o.grace,
        allow: o.allow,
        max_per_ip: o.max_per_ip,
        per_ip_prefix6: o.per_ip_prefix6,
        loops: o.loops,
        record: o.record.map(|path| progjar::recording::Options {
            path: PathBuf::from(cli::os_arg(path)),
            limit: o.record_limit,
        }),
    }
}

/// A certificate and its key, given as `--NAME-cert` and `--NAME-key`: both
/// or neither (one without the other is a usage error).
fn cert_and_key(
    name: &str,
    cert: &Option<String>,
    key: &Option<String>,
) -> Option<(PathBuf, PathBuf)> {
    let path = |p: &String| PathBuf::from(cli::os_arg(p.clone()));
    match (cert, key) {
        (Some(cert), Some(key)) => Some((path(cert), path(key))),
        (Some(_), None) => {
            cli::usage_error(&format!("--{name}-cert needs --{name}-key, the certificate's key"))
        }
        (None, Some(_)) => cli::usage_error(&format!(
            "--{name}-key needs --{name}-cert, the certificate it is for"
        )),
        (None, None) => None,
    }
}

/// `--tls-cert` with `--tls-key`, and `--handshake-timeout` (an option of TLS only).
pub fn server_tls(a: &ServerArgs) -> Option<server::TlsOptions> {
    let files = cert_and_key("tls", &a.tls_cert, &a.tls_key);
    if files.is_none() && a.handshake_timeout.is_some() {
        cli::usage_error("--handshake-timeout is an option of TLS; add --tls-cert and --tls-key");
    }
    files.map(|(cert, key)| server::TlsOptions {
        cert,
        key,
        handshake_timeout: a.handshake_timeout.unwrap_or(server::DEFAULT_HANDSHAKE_TIMEOUT),
    })
}

/// `progjar proxy`'s `Config`: the loop's options, the target and the relay's own.
pub fn proxy_config(a: ProxyArgs) -> proxy::Config {
    proxy::Config {
        serve: loop_config(a.loop_options(), proxy::DEFAULT_PORT),
        to: a.to.clone().unwrap_or_else(|| {
            cli::usage_error(
                "--to is needed: the real server to relay to, e.g. --to 127.0.0.1:10000",
            )
        }),
        connect_timeout: a.connect_timeout,
        splice: !a.no_splice,
        intercept: intercept_files(&a),
    }
}

/// `--intercept-cert` and `--intercept-key`, both or neither.
fn intercept_files(a: &ProxyArgs) -> Option<proxy::InterceptFiles> {
    let files = cert_and_key("intercept", &a.intercept_cert, &a.intercept_key);
    files.map(|(cert, key)| proxy::InterceptFiles { cert, key })
}
