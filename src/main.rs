//! The `progjar` command: parse the command line, start logging, call the library.
//!
//! Everything that does work lives in the library (`src/lib.rs` explains the layout);
//! this file only turns arguments into the library's `Config` structs.

use std::net::IpAddr;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;
use progjar::event_loop::admission::Cidr;
use progjar::{cli, client, event_loop, info, parse, proxy, resolve, server, tls};

/// progjar: the network-programming lab's echo server, client and socket info.
///
/// Logs go to stderr; set RUST_LOG=debug to see every piece of data, or
/// RUST_LOG=trace to watch every readiness event of the server's loop.
/// `progjar --version` prints the version.
#[derive(FromArgs)]
#[argh(help_triggers("-h", "--help"))]
struct Progjar {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Server(ServerArgs),
    Proxy(ProxyArgs),
    Client(ClientArgs),
    Info(InfoArgs),
    RecordPage(RecordPageArgs),
    Cert(CertArgs),
}

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
        struct $name {
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
            fn loop_options(&self) -> LoopOptions {
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
struct LoopOptions {
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

/// Draw a `progjar server --record` file as a page: one lane per connection.
///
/// The page (HTML with inline SVG, no scripts, no network) shows when the
/// loop served each client, the bytes it read and wrote, and where
/// backpressure stopped reading a slow client: the 16 busiest clients drawn,
/// the 100 busiest listed, the rest added up in one line. Example:
/// `progjar record-page loop.rec loop.html`. A recording cut short (the server
/// killed, its disk full) is drawn up to its last whole line, with a warning;
/// exit 2 when the file is not a recording or has no whole wake-up line.
#[derive(FromArgs)]
#[argh(subcommand, name = "record-page", help_triggers("-h", "--help"))]
struct RecordPageArgs {
    /// the recording (from `progjar server --record FILE`)
    #[argh(positional)]
    input: String,
    /// the page to write, e.g. loop.html
    #[argh(positional)]
    output: String,
}

/// Send a message or a file to the echo server and check the echo comes back whole.
///
/// Examples: `progjar client 127.0.0.1:10000`; `progjar client --size 2MB`;
/// `progjar client --file sendimage.jpg --output recvimage.jpg`;
/// `progjar client alpine-1 alpine-2` (in turn; --parallel for both at once);
/// `progjar client -i` (type lines, see each echo, Ctrl-D ends).
///
/// Exit codes: 0 echo complete and identical, 1 other error (or the summary
/// could not be written), 2 bad arguments (or --output is the file being sent),
/// 3 connection refused, 4 host cannot be resolved, 5 timed out,
/// 6 echo short or different, 7 file cannot be read or written, 9 a TLS check
/// failed (the server's certificate refused, or no TLS handshake), 130 Ctrl-C,
/// SIGTERM or SIGHUP (after the summary so far). With several servers, the
/// highest of their codes: 0 only if every echo was identical. More in docs/client.md.
#[derive(FromArgs)]
#[argh(subcommand, name = "client", help_triggers("-h", "--help"))]
struct ClientArgs {
    /// servers: HOST, HOST:PORT or [IPv6]:PORT; several are sent the same
    /// payload, one after another (default localhost)
    #[argh(positional)]
    hosts: Vec<String>,
    /// port of every HOST given without one (default 10000)
    #[argh(option, default = "10000", from_str_fn(parse_server_port))]
    port: u16,
    /// text to send (default "INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ")
    #[argh(option)]
    message: Option<String>,
    /// send this file instead of a message; - reads standard input (one server only)
    #[argh(option)]
    file: Option<String>,
    /// send a generated message of this size: the course's message and a newline,
    /// repeated, e.g. 2MB (binary units as everywhere here: 2MB = 2MiB = 2097152)
    #[argh(option, from_str_fn(parse_payload_size))]
    size: Option<usize>,
    /// write the echo to this file (- for stdout, which moves the summary to
    /// stderr); one server only. An existing file is replaced, as with curl -o,
    /// but only once the echo is complete and identical; otherwise it is left
    /// as it was and what came back is kept in FILE.partial
    #[argh(option)]
    output: Option<String>,
    /// send each line typed on standard input and print its echo as it comes,
    /// each line marked "echo: "; Ctrl-D ends (the way ncat is used)
    #[argh(switch, short = 'i')]
    interactive: bool,
    /// with several servers, send to all of them at once
    #[argh(switch)]
    parallel: bool,
    /// bytes asked of each read() of the echo (default 16, the course's recv(16),
    /// while pieces are logged, i.e. up to 4KiB; 64KiB for larger payloads)
    #[argh(option, from_str_fn(parse_chunk))]
    chunk: Option<usize>,
    /// seconds to wait for the connection, for the TLS handshake and for each
    /// read, e.g. 10 or 2.5 (default 10)
    #[argh(option, default = "Duration::from_secs(10)", from_str_fn(parse_duration))]
    timeout: Duration,
    /// talk TLS to the server (with --ca FILE or --insecure); the log shows the
    /// version, cipher suite and the server's certificate
    #[argh(switch)]
    tls: bool,
    /// with --tls: trust the CAs in this PEM file, e.g. ca.crt from `progjar cert`,
    /// and a self-signed certificate listed in it (as OpenSSL's cafile does)
    #[argh(option)]
    ca: Option<String>,
    /// with --tls: check nothing about the server's certificate (the course's
    /// CERT_NONE); anyone in the middle can then read and change everything
    #[argh(switch)]
    insecure: bool,
    /// with --tls: the name the server's certificate must be for (default: the
    /// host given; an address is checked as an address)
    #[argh(option)]
    server_name: Option<String>,
}

/// Write a CA and a server certificate it signs, for TLS.
///
/// The files are DIR/ca.crt, DIR/server.crt and DIR/server.key, both
/// certificates ECDSA P-256, valid for a year. The server's certificate is for the
/// names given with --name, by default localhost, 127.0.0.1, mesin1 to mesin4
/// and 172.16.16.101 to 172.16.16.104 (the course's machines). Clients trust
/// it with `progjar client --tls --ca DIR/ca.crt`. An existing file is never
/// overwritten: then nothing is written and the exit status is 2. More in docs/tls.md.
#[derive(FromArgs)]
#[argh(subcommand, name = "cert", help_triggers("-h", "--help"))]
struct CertArgs {
    /// the directory to write the three files into (made if missing)
    #[argh(positional)]
    dir: String,
    /// a name the server's certificate is for (a host name or an IP address);
    /// repeat for more; the first is also its subject's CN (default: the list above)
    #[argh(option)]
    name: Vec<String>,
}

/// Show this machine's names and addresses, a DNS lookup and socket timeouts.
#[derive(FromArgs)]
#[argh(subcommand, name = "info", help_triggers("-h", "--help"))]
struct InfoArgs {
    /// remote host to look up (default www.espnfc.com)
    #[argh(option, default = "String::from(\"www.espnfc.com\")")]
    remote: String,
    /// port for the lookup (default 80)
    #[argh(option, default = "80", from_str_fn(parse_port))]
    port: u16,
}

fn parse_port(s: &str) -> Result<u16, String> {
    parse::port(s)
}

/// The client's `--port`: 0 would ask for "any free port", which only a listener can use.
fn parse_server_port(s: &str) -> Result<u16, String> {
    client::server_port(s)
}

fn parse_payload_size(s: &str) -> Result<usize, String> {
    parse::size_in(s, 0..=usize::MAX)
}

fn parse_backlog(s: &str) -> Result<u32, String> {
    let n = parse::number_in(s, 0..=u32::MAX.into())?;
    u32::try_from(n).map_err(|e| e.to_string())
}

/// An address, or a name resolved to one (IPv4 first: see `resolve::bind_address`),
/// and the port written after it, if any (`HOST:PORT`, `[V6]:PORT`, as for the
/// client). Only the host is ever looked up, never a string with a port in it.
fn parse_bind(s: &str) -> Result<(IpAddr, Option<u16>), String> {
    let (host, port) = parse::host_and_port(s.as_bytes())?;
    let host = String::from_utf8_lossy(host);
    // No name has a colon: this is an IPv6 address with a port but no brackets.
    if host.contains(':') && host.parse::<IpAddr>().is_err() {
        return Err(format!(
            "'{s}' is not an address; an IPv6 address with a port is written in brackets, \
             e.g. [::1]:10000"
        ));
    }
    Ok((resolve::bind_address(&host, resolve::LOOKUP_LIMIT)?, port))
}

/// The port to listen on: `--port`, or the one written in `--bind` (both must
/// agree), or the command's `default`.
fn listen_port(bind: Option<u16>, port: Option<u16>, default: u16) -> u16 {
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
fn loop_config(o: LoopOptions, default_port: u16) -> event_loop::Config {
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

/// `--to HOST:PORT`: any bytes for the host, as for the client.
fn parse_to(s: &str) -> Result<client::Target, String> {
    proxy::parse_target(&cli::os_arg(s.to_string()))
}

fn parse_read_size(s: &str) -> Result<usize, String> {
    parse::size_in(s, 1..=progjar::event_loop::MAX_READ_SIZE)
}

fn parse_pending(s: &str) -> Result<usize, String> {
    parse::size_in(s, 1..=usize::MAX)
}

fn parse_record_limit(s: &str) -> Result<usize, String> {
    parse::size_in(s, 1024..=usize::MAX)
}

fn parse_chunk(s: &str) -> Result<usize, String> {
    parse::size_in(s, 1..=1024 * 1024)
}

fn parse_count(s: &str) -> Result<usize, String> {
    parse::count(s)
}

/// `--loops`: past 1024 a loop per thread costs more than it serves.
fn parse_loops(s: &str) -> Result<usize, String> {
    let n = parse::number_in(s, 0..=1024)?;
    usize::try_from(n).map_err(|e| e.to_string())
}

fn parse_prefix6(s: &str) -> Result<u8, String> {
    parse::prefix_len(s, 128)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    parse::duration(s)
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    s.parse()
}

/// What the client sends: one of `--message`, `--file` (any bytes, as given),
/// `--size` and `--interactive`, or the course's message.
fn payload(a: &ClientArgs) -> client::Payload {
    let given = [a.message.is_some(), a.file.is_some(), a.size.is_some(), a.interactive];
    if given.iter().filter(|&&g| g).count() > 1 {
        cli::usage_error("use only one of --message, --file, --size and --interactive");
    }
    match (&a.message, &a.file, a.size) {
        _ if a.interactive => client::Payload::Interactive,
        (_, Some(path), _) => client::Payload::File(PathBuf::from(cli::os_arg(path.clone()))),
        (Some(text), _, _) => client::Payload::Message(cli::os_arg(text.clone()).into_vec()),
        (_, _, Some(n)) => client::Payload::Generated(n as u64),
        (None, None, None) => client::Payload::Message(client::DEFAULT_MESSAGE.as_bytes().to_vec()),
    }
}

/// The client's command line as its `Config`, refusing what cannot work
/// together: standard input cannot be read twice (it is not kept: memory
/// stays bounded), and several echoes cannot go to one file.
fn client_config(a: ClientArgs) -> client::Config {
    let payload = payload(&a);
    let mut hosts = a.hosts.clone();
    if hosts.is_empty() {
        hosts.push("localhost".to_string());
    }
    let target = |h: String| {
        client::Target::parse(&cli::os_arg(h), a.port).unwrap_or_else(|e| cli::usage_error(&e))
    };
    let targets: Vec<client::Target> = hosts.into_iter().map(target).collect();
    let stdin = a.interactive || a.file.as_deref() == Some("-");
    if targets.len() > 1 && stdin {
        cli::usage_error(
            "standard input can be sent to one server only (it is read once, not kept); \
             save it to a file and use --file",
        );
    }
    if targets.len() > 1 && a.output.is_some() {
        cli::usage_error("--output takes the echo of one server only");
    }
    let tls = tls_options(&a);
    let mut output = a.output.map(|p| PathBuf::from(cli::os_arg(p)));
    if a.interactive {
        if output.is_some() {
            cli::usage_error("--interactive prints the echo; it cannot go to --output too");
        }
        output = Some(PathBuf::from("-"));
    }
    client::Config {
        targets,
        payload,
        output,
        chunk: a.chunk,
        timeout: a.timeout,
        parallel: a.parallel,
        tls,
    }
}

/// `--tls` and its options, by the rules `progjar-stress --tls` shares
/// (`tls::TlsOptions::from_args`): a wrong combination is a usage error.
fn tls_options(a: &ClientArgs) -> Option<client::TlsOptions> {
    let ca = a.ca.clone().map(|p| PathBuf::from(cli::os_arg(p)));
    tls::TlsOptions::from_args(a.tls, ca, a.insecure, a.server_name.clone())
        .unwrap_or_else(|why| cli::usage_error(&why))
}

/// `--tls-cert` with `--tls-key`, and `--handshake-timeout`; one without
/// the other is a usage error.
fn server_tls(a: &ServerArgs) -> Option<server::TlsOptions> {
    let path = |p: &String| PathBuf::from(cli::os_arg(p.clone()));
    match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(server::TlsOptions {
            cert: path(cert),
            key: path(key),
            handshake_timeout: a.handshake_timeout.unwrap_or(server::DEFAULT_HANDSHAKE_TIMEOUT),
        }),
        (Some(_), None) => cli::usage_error("--tls-cert needs --tls-key, the certificate's key"),
        (None, Some(_)) => {
            cli::usage_error("--tls-key needs --tls-cert, the certificate it is for")
        }
        (None, None) if a.handshake_timeout.is_some() => cli::usage_error(
            "--handshake-timeout is an option of TLS; add --tls-cert and --tls-key",
        ),
        (None, None) => None,
    }
}

/// `--intercept-cert` and `--intercept-key`, both or neither.
fn intercept_files(a: &ProxyArgs) -> Option<proxy::InterceptFiles> {
    let path = |p: &String| PathBuf::from(cli::os_arg(p.clone()));
    match (&a.intercept_cert, &a.intercept_key) {
        (Some(cert), Some(key)) => Some(proxy::InterceptFiles { cert: path(cert), key: path(key) }),
        (Some(_), None) => {
            cli::usage_error("--intercept-cert needs --intercept-key, the certificate's key")
        }
        (None, Some(_)) => {
            cli::usage_error("--intercept-key needs --intercept-cert, the certificate it is for")
        }
        (None, None) => None,
    }
}

fn main() -> ExitCode {
    let args: Progjar = cli::parse_command::<Progjar, Command>(env!("CARGO_PKG_VERSION"));
    // A loop must never wait for stderr, so the server and the proxy log through a queue.
    let log = match args.command {
        Command::Server(_) | Command::Proxy(_) => progjar::logging::init_nonblocking(),
        _ => progjar::logging::init(),
    };
    match args.command {
        Command::Server(a) => {
            let tls = server_tls(&a);
            let serve = loop_config(a.loop_options(), server::Config::default().port);
            log.finish(server::run(serve, tls))
        }
        Command::Proxy(a) => log.finish(proxy::run(proxy::Config {
            serve: loop_config(a.loop_options(), proxy::DEFAULT_PORT),
            to: a.to.clone().unwrap_or_else(|| {
                cli::usage_error(
                    "--to is needed: the real server to relay to, e.g. --to 127.0.0.1:10000",
                )
            }),
            connect_timeout: a.connect_timeout,
            splice: !a.no_splice,
            intercept: intercept_files(&a),
        })),
        Command::Client(a) => cli::finish(client::run(client_config(a))),
        Command::RecordPage(a) => cli::finish(progjar::recording::command::run(
            &PathBuf::from(cli::os_arg(a.input)),
            &PathBuf::from(cli::os_arg(a.output)),
        )),
        Command::Cert(a) => cli::finish(tls::cert(tls::CertConfig {
            dir: PathBuf::from(cli::os_arg(a.dir)),
            names: a.name,
        })),
        Command::Info(a) => {
            cli::finish(info::run(info::Config { remote: cli::os_arg(a.remote), port: a.port }))
        }
    }
}
