//! The `progjar` command: parse the command line, start logging, call the library.
//!
//! Everything that does work lives in the library (`src/lib.rs` explains the layout);
//! this file and `command_line/` only turn arguments into the library's `Config` structs.

mod command_line;

use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;
use command_line::*;
use progjar::{cli, client, info, proxy, server, tls};

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
        Command::Proxy(a) => log.finish(proxy::run(proxy_config(a))),
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
