//! `progjar-stress`: drive thousands of echo connections from one thread and
//! check every byte that comes back.
//!
//! The existing load tools each miss something a lab needs: a thread per
//! connection (which measures the scheduler), treating a short read as an error
//! (TCP keeps no message boundaries, so a message may come back in pieces),
//! panicking on a failed connect, no latency figures, and above all none of them
//! checks that the echo is the bytes that were sent. This one does all of that
//! in one `mio` loop, the same design as the server it tests.
//!
//! The files, one concept each:
//! * `main.rs`: the command line (argh), checked into a [`config::Config`];
//! * `config.rs`: what the run is asked to do, read by every other file;
//! * `run.rs`: the event loop, timers, stopping;
//! * `open.rs`: starting connections at the asked rate, and the limits that stop it;
//! * `conn.rs`: one connection's connect, write, read and check;
//!   `conn_tls.rs`: its TLS side with `--tls` (handshake, encrypt, decrypt, `close_notify`);
//! * `tls.rs`: one connection's TLS on progjar's own session code
//!   (`progjar::tls::session`, the server's, in its client role), the
//!   buffers all connections share, and the handshakes' tally;
//! * `describe.rs`: an I/O error in words, with its errno name;
//! * `pattern.rs`: the bytes each message carries, computed, never stored;
//! * `stats.rs`: the counters, the latency histograms and the live line;
//! * `histogram.rs`: a latency histogram as text in the JSON, and read back safely;
//! * `report.rs`: the summary, its verdict and the JSON;
//! * `merge.rs`: `progjar-stress merge`, several runs' JSON checked and added up into one report;
//! * `lineup.rs`: the merged runs' timelines on one clock, the gaps between them cut out;
//! * `html.rs`: the `--report` page, drawn by `chart.rs` (SVG line charts).
//!
//! Imports go one way: `main` → `run` → `open` → `conn` → `tls`, `stats`,
//! `pattern`, `describe`, `config`; `merge` → `lineup`, `report`, which reads
//! only `config`, `stats`, `histogram` and `tls`'s tally; `html` reads only
//! `stats`, `report` and `chart`.
//!
//! Exit status: 0 when every connection asked for connected and every byte came
//! back right, 1 when a byte or a connection did not (the summary says which
//! connection and where; with `--tls`, a refused certificate or a server that
//! does not speak TLS too), 2 for a bad command line, 4 for a name that does not
//! resolve, 8 when nothing went wrong but the run ended before every connection
//! asked for had connected (INCOMPLETE: it did not test what was asked), 130
//! when a second signal ended the run at once (the summary still comes out).
//! The codes are progjar's (`progjar::cli`).

mod chart;
mod config;
mod conn;
mod describe;
mod histogram;
mod html;
mod lineup;
mod merge;
mod open;
mod report;
mod run;
mod stats;
mod tls;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{ErrorKind, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;
use progjar::cli::{self, Failure};
use progjar::client::Target;
use progjar::tls::{ClientTls, TlsOptions};
use progjar::{parse, resolve, units};
// The pattern lives in the crate's library, which the tests reuse.
use progjar_stress::pattern;

use crate::config::{Config, TlsConfig, Until};
use crate::report::Report;

/// The course's port, for a target given without one.
const DEFAULT_PORT: u16 = 10000;

/// Largest message (`-s`): the pattern is computed in 64 KiB chunks whatever the
/// size, so this only bounds what one connection keeps in flight
/// (`pipeline × size`) to something the socket buffers and the server can hold.
const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// Most active connections (`-c`) or idle ones (`--idle`): a million is about
/// Linux's default ceiling on open files per process (fs.nr_open), so more could
/// never be opened anyway.
const MAX_CONNECTIONS: u32 = 1_000_000;

/// Most messages in flight per connection (`--pipeline`). Beyond a thousand the
/// socket buffers, not the pipeline, limit what is in flight, and each slot
/// costs 16 bytes per connection for its send time.
const MAX_PIPELINE: u32 = 1024;

/// Most messages per connection (`-n`): keeps every stream offset
/// (`messages × size`) far inside 64 bits.
const MAX_MESSAGES: u64 = 1_000_000_000;

/// The default `--echo-timeout`. On loopback an echo takes microseconds, and
/// even 10000 busy connections take milliseconds: five seconds is a stall.
const DEFAULT_ECHO_TIMEOUT: Duration = Duration::from_secs(5);

/// The default run length when neither `-d` nor `-n` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// progjar-stress: many echo connections from one thread; every echoed byte is
/// checked and every message's latency measured.
///
/// A live line goes to stderr every second; the summary goes to stdout.
/// Exit status: 0 all bytes echoed right, 1 a byte lost or wrong or a
/// connection failed (the summary names the connection and offset; with
/// --tls also a refused certificate or a server not speaking TLS), 2 bad
/// arguments, 8 incomplete (the run ended before every connection asked for
/// had connected), 130 stopped at once by a second Ctrl-C.
#[derive(FromArgs)]
#[argh(help_triggers("-h", "--help"))]
// The doc comments are argh's help text, where `[::1]:10000` is an address, not a link.
#[allow(rustdoc::broken_intra_doc_links)]
struct Args {
    /// echo server: HOST:PORT, [IPv6]:PORT, or HOST for port 10000
    /// (default 127.0.0.1:10000)
    #[argh(positional, default = "default_target()", from_str_fn(parse_target))]
    target: Target,
    /// connections that send messages (default 50)
    #[argh(option, short = 'c', default = "50", from_str_fn(parse_connections))]
    connections: u32,
    /// connections started per second, an even ramp that does not overflow the
    /// server's listen backlog (default unlimited: as fast as possible)
    #[argh(option, from_str_fn(parse_rate))]
    connect_rate: Option<u32>,
    /// bytes per message, e.g. 512, 4KiB, 1MiB (default 512)
    #[argh(option, short = 's', default = "512", from_str_fn(parse_size))]
    size: usize,
    /// how long to run, e.g. 10, 2.5s, 500ms, 1m (default 10 s unless -n is given)
    #[argh(option, short = 'd', from_str_fn(parse_duration))]
    duration: Option<Duration>,
    /// messages per connection: stop when all are echoed, instead of after -d
    /// (default: none, run for -d)
    #[argh(option, short = 'n', from_str_fn(parse_messages))]
    messages: Option<u64>,
    /// messages in flight per connection; 1 waits for each echo before sending
    /// the next (default 1)
    #[argh(option, default = "1", from_str_fn(parse_pipeline))]
    pipeline: u32,
    /// extra connections that connect and stay silent, opened first
    /// (default 0)
    #[argh(option, default = "0", from_str_fn(parse_idle))]
    idle: u32,
    /// an echo slower than this is reported late (a failure); one still
    /// missing after twice as long is lost (default 5s)
    #[argh(option, default = "DEFAULT_ECHO_TIMEOUT", from_str_fn(parse_duration))]
    echo_timeout: Duration,
    /// with -d: close each connection after this many messages and open a new
    /// one in its place, measuring connects per second (default: keep each
    /// connection for the whole run)
    #[argh(option, from_str_fn(parse_messages))]
    per_connection: Option<u64>,
    /// local address to connect from; repeat it to spread the connections over
    /// several (e.g. 127.0.0.2 and 127.0.0.3 on loopback), each with its own
    /// ~28000 local ports (default: the kernel chooses)
    #[argh(option)]
    source: Vec<IpAddr>,
    /// talk TLS to the server (with --ca FILE or --insecure); the connect
    /// time then includes the TLS handshake (default off)
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
    /// print the summary as one JSON object on stdout instead of text
    /// (default off)
    #[argh(switch)]
    json: bool,
    /// also write the run as a web page with charts to this file, e.g.
    /// run.html: self-contained, it opens in any browser (default: none)
    #[argh(option)]
    report: Option<String>,
    #[argh(subcommand)]
    command: Option<Command>,
}

/// What else the tool does besides a run.
#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Merge(MergeArgs),
}

/// Add up the --json summaries of runs made side by side (e.g. from several
/// machines): counts and bytes summed, percentiles of all their messages
/// together, time the union of the runs' intervals. Exit 0 when every run was
/// OK, 1 when any failed, 8 when none failed but any was incomplete, 2 when a
/// file is not such a summary.
#[derive(FromArgs)]
#[argh(subcommand, name = "merge")]
struct MergeArgs {
    /// files written by `progjar-stress --json` (or by `merge --json`)
    #[argh(positional)]
    files: Vec<String>,
    /// print the combined summary as JSON, which can be merged again
    /// (default off)
    #[argh(switch)]
    json: bool,
    /// also write the combined run as a page, like a single run's --report
    /// (default: none)
    #[argh(option)]
    report: Option<String>,
}

/// The same `HOST:PORT` rule as `progjar client`'s.
fn parse_target(s: &str) -> Result<Target, String> {
    Target::parse(OsStr::new(s), DEFAULT_PORT)
}

fn default_target() -> Target {
    Target { host: "127.0.0.1".into(), port: DEFAULT_PORT }
}

/// A count from 1 to `max`, by progjar's number parser and in its words.
fn count_up_to(s: &str, max: u64) -> Result<u64, String> {
    parse::number_in(s, 1..=max)
}

/// [`count_up_to`] for the counts kept as `u32` (`max` fits, so the cast is exact).
fn count_u32(s: &str, max: u32) -> Result<u32, String> {
    count_up_to(s, u64::from(max)).map(|n| n as u32)
}

fn parse_connections(s: &str) -> Result<u32, String> {
    count_u32(s, MAX_CONNECTIONS)
}

/// The one count that may be 0: no idle connections.
fn parse_idle(s: &str) -> Result<u32, String> {
    parse::number_in(s, 0..=u64::from(MAX_CONNECTIONS)).map(|n| n as u32)
}

fn parse_rate(s: &str) -> Result<u32, String> {
    count_u32(s, u32::MAX)
}

fn parse_pipeline(s: &str) -> Result<u32, String> {
    count_u32(s, MAX_PIPELINE)
}

fn parse_messages(s: &str) -> Result<u64, String> {
    count_up_to(s, MAX_MESSAGES)
}

fn parse_size(s: &str) -> Result<usize, String> {
    parse::size_in(s, 1..=MAX_MESSAGE_SIZE)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    parse::duration(s)
}

/// The first address `target` resolves to, through the client's resolver
/// (and its exit status 4 when it cannot be resolved).
fn resolve(target: &Target) -> Result<SocketAddr, Failure> {
    let unresolved = |why: String| Failure::new(cli::EXIT_UNRESOLVED, why);
    let label = target.label();
    let addrs = resolve::tcp_addresses(&target.host, target.port, resolve::LOOKUP_LIMIT)
        .map_err(|why| unresolved(format!("cannot resolve {label}: {why}")))?;
    addrs.first().copied().ok_or_else(|| unresolved(format!("{label} resolves to no address")))
}

/// Create the `--report` file before the run, so that a path that cannot be
/// written ends the program at once (exit 2) instead of after a long run.
fn create_report(path: &Path) -> (File, PathBuf) {
    match File::create(path) {
        Ok(file) => (file, path.to_path_buf()),
        Err(e) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let why = match e.kind() {
                ErrorKind::NotFound => format!("the directory {} does not exist", dir.display()),
                _ => format!("cannot create it: {e}"),
            };
            cli::usage_error(&format!("--report {}: {why}", path.display()))
        }
    }
}

/// Draw the finished run as the `--report` page (`html.rs`) into `file`.
fn write_report(
    file: File,
    path: &Path,
    report: &Report,
    summary: &report::Summary,
    text: &str,
) -> Result<(), Failure> {
    let c = report.config;
    let title = format!(
        "{} to {}{}, {} messages, pipeline {}",
        units::plural(c.connections.into(), "connection"),
        c.target,
        if c.tls.is_some() { " over TLS" } else { "" },
        units::bytes(c.message_size as u64),
        c.pipeline
    );
    let page = html::Page {
        title: &title,
        summary: text,
        result: summary.result,
        latency: report.stats.latency(),
        timeline: report.stats.timeline(),
        errors: &summary.errors,
        error_count: summary.error_count,
    };
    write_page(file, path, &page)
}

fn main() -> ExitCode {
    let args: Args = cli::parse_args();
    if let Some(Command::Merge(mut merge)) = args.command {
        // `progjar-stress --json merge ...` means the same as `merge --json`.
        merge.json |= args.json;
        return cli::finish(merge_runs(merge));
    }
    let stop = match (args.duration, args.messages) {
        (Some(_), Some(_)) => {
            cli::usage_error("-d and -n cannot be used together: run for a time or for a count")
        }
        (Some(d), None) => Until::After(d),
        (None, Some(n)) => Until::Messages(n),
        (None, None) => Until::After(DEFAULT_DURATION),
    };
    if args.messages.is_some() && args.per_connection.is_some() {
        cli::usage_error("-n and --per-connection cannot be used together: -n ends the run, --per-connection reconnects")
    }
    progjar::logging::init();
    cli::finish(stress(&args, stop))
}

/// Draw merged runs as the same page a single run's `--report` is.
fn write_merged_report(
    file: File,
    path: &Path,
    total: &report::Summary,
    text: &str,
) -> Result<(), Failure> {
    let latency = total.latency_us.decode().map_err(|why| {
        Failure::new(cli::EXIT_FAILURE, format!("the merged latencies cannot be drawn: {why}"))
    })?;
    let title = format!(
        "{} runs, {} to {}, {} messages, pipeline {}",
        units::grouped(total.runs),
        units::plural(total.connections, "connection"),
        total.target,
        units::bytes(total.message_size as u64),
        total.pipeline
    );
    let page = html::Page {
        title: &title,
        summary: text,
        result: total.result,
        latency: &latency,
        timeline: &total.timeline,
        errors: &total.errors,
        error_count: total.error_count,
    };
    write_page(file, path, &page)
}

/// Write `page` into `file` (created early by [`create_report`]).
fn write_page(mut file: File, path: &Path, page: &html::Page) -> Result<(), Failure> {
    file.write_all(html::render(page).as_bytes()).map_err(|e| {
        Failure::new(cli::EXIT_FAILURE, format!("cannot write the report {}: {e}", path.display()))
    })
}

/// `merge`: read, add up, print; the merged verdict is the exit status.
fn merge_runs(args: MergeArgs) -> Result<(), Failure> {
    if args.files.is_empty() {
        cli::usage_error("merge needs the --json files of the runs to add up")
    }
    let page_file = args.report.map(|p| create_report(&PathBuf::from(cli::os_arg(p))));
    let paths: Vec<_> = args.files.into_iter().map(cli::os_arg).collect();
    let total = merge::merge_files(&paths)?;
    let text = total.text();
    let printed =
        cli::write_stdout(&format!("{}\n", if args.json { total.json() } else { text.clone() }));
    if let Some((file, path)) = page_file {
        write_merged_report(file, &path, &total, &text)?;
    }
    printed?;
    total.verdict()
}

/// `--tls` and its options, by `progjar client --tls`'s rules and code: a
/// wrong combination is a usage error, the `--ca` file is read once here (a
/// missing one exits 2 before any connection), `--insecure` warns.
fn tls_config(args: &Args) -> Result<Option<TlsConfig>, Failure> {
    let ca = args.ca.clone().map(|p| PathBuf::from(cli::os_arg(p)));
    let options = TlsOptions::from_args(args.tls, ca, args.insecure, args.server_name.clone())
        .unwrap_or_else(|why| cli::usage_error(&why));
    let Some(options) = options else { return Ok(None) };
    let client = ClientTls::new(&options)?;
    if let Some(warning) = client.warning() {
        log::warn!("{warning}");
    }
    let target = client.to(&args.target.host)?;
    Ok(Some(TlsConfig { target, checked: client.checks_certificate() }))
}

/// Resolve, run, print the summary; a failed run is a [`Failure`] (exit 1, or
/// 130 after a second signal).
fn stress(args: &Args, until: Until) -> Result<(), Failure> {
    let page_file = args.report.clone().map(|p| create_report(&PathBuf::from(cli::os_arg(p))));
    let tls = tls_config(args)?;
    let target = resolve(&args.target)?;
    for &ip in &args.source {
        if let Err(why) = open::check_source(ip, target) {
            cli::usage_error(&why)
        }
    }
    let config = Config {
        target,
        connections: args.connections,
        idle: args.idle,
        connect_rate: args.connect_rate,
        message_size: args.size,
        until,
        pipeline: args.pipeline,
        echo_timeout: args.echo_timeout,
        per_connection: args.per_connection,
        sources: args.source.clone(),
        tls,
    };
    let outcome = run::run(&config)?;
    let report = Report {
        config: &config,
        seconds: outcome.seconds,
        stats: &outcome.stats,
        notes: &outcome.notes,
        interrupted: outcome.interrupted,
        tls: outcome.tls.as_ref(),
    };
    let summary = report.summary();
    let text = summary.text();
    // A summary that cannot be written is a failure (exit 1, or 141 for a
    // closed pipe), but the page is still written first.
    let printed =
        cli::write_stdout(&format!("{}\n", if args.json { summary.json() } else { text.clone() }));
    if let Some((file, path)) = page_file {
        write_report(file, &path, &report, &summary, &text)?;
    }
    printed?;
    if outcome.forced {
        return Err(Failure::new(cli::EXIT_INTERRUPTED, "stopped at once by a second signal"));
    }
    summary.verdict()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every count is read by progjar's number parser, in its words.
    #[test]
    fn counts_are_parsed_by_progjars_parser() {
        assert_eq!(parse_connections(" 50 "), Ok(50));
        assert_eq!(parse_connections("0"), parse::number_in("0", 1..=1_000_000).map(|n| n as u32));
        assert_eq!(
            parse_pipeline("2000"),
            Err("'2000' must be a whole number from 1 to 1024".into())
        );
        assert_eq!(parse_idle("0"), Ok(0));
        assert_eq!(parse_idle("x"), Err("'x' must be a whole number from 0 to 1000000".into()));
        assert_eq!(
            parse_messages("-1"),
            Err("'-1' must be a whole number from 1 to 1000000000".into())
        );
    }
}
