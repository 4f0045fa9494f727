//! `progjar client`'s command line, and the rules about what cannot go together.

use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;
use progjar::{cli, client, tls};

use super::parsers::*;

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
pub struct ClientArgs {
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
pub fn client_config(a: ClientArgs) -> client::Config {
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
