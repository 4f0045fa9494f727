//! The command lines that run no loop and need no rules of their own:
//! `record-page`, `cert` and `info`.

use argh::FromArgs;

use super::parsers::*;

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
pub struct RecordPageArgs {
    /// the recording (from `progjar server --record FILE`)
    #[argh(positional)]
    pub input: String,
    /// the page to write, e.g. loop.html
    #[argh(positional)]
    pub output: String,
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
pub struct CertArgs {
    /// the directory to write the three files into (made if missing)
    #[argh(positional)]
    pub dir: String,
    /// a name the server's certificate is for (a host name or an IP address);
    /// repeat for more; the first is also its subject's CN (default: the list above)
    #[argh(option)]
    pub name: Vec<String>,
}

/// Show this machine's names and addresses, a DNS lookup and socket timeouts.
#[derive(FromArgs)]
#[argh(subcommand, name = "info", help_triggers("-h", "--help"))]
pub struct InfoArgs {
    /// remote host to look up (default www.espnfc.com)
    #[argh(option, default = "String::from(\"www.espnfc.com\")")]
    pub remote: String,
    /// port for the lookup (default 80)
    #[argh(option, default = "80", from_str_fn(parse_port))]
    pub port: u16,
}
