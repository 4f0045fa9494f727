//! What every progjar binary does with its command line and its exit status.
//!
//! argh prints several lines and exits 1 on a bad argument; scripts and students
//! are better served by one line on stderr and the conventional usage status 2
//! (what `ncat`, `iperf3` and the BSD tools use). Runtime failures print one
//! `progjar: error: ...` line and exit with the code the failure carries.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::OnceLock;

use argh::{EarlyExit, FromArgs, SubCommands};

// Exit statuses: one table for every progjar binary. The client and `info` use
// 0 to 7; the server 0, 1, 2 and 130; the stress tool 0, 1, 2, 4, 8 and 130;
// every one 141 when its output is closed.

/// Exit status: success (for the client: the echo came back complete and identical).
pub const EXIT_OK: u8 = 0;
/// Exit status: a runtime failure that has no more specific code.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status: a bad command line.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: the connection was refused (nothing listens there).
pub const EXIT_REFUSED: u8 = 3;
/// Exit status: the host name cannot be resolved.
pub const EXIT_UNRESOLVED: u8 = 4;
/// Exit status: connecting, sending or waiting for the echo timed out.
pub const EXIT_TIMEOUT: u8 = 5;
/// Exit status: the echo is short, longer, or different from what was sent.
pub const EXIT_ECHO: u8 = 6;
/// Exit status: the file (or standard input) cannot be read.
pub const EXIT_FILE: u8 = 7;
/// Exit status: nothing went wrong, but the run did not do all that was asked
/// (`progjar-stress`: some of the connections asked for never connected before
/// it ended, so they were never all open at once).
pub const EXIT_INCOMPLETE: u8 = 8;
/// Exit status: a TLS check failed: the server's certificate was refused (expired,
/// for another name, signed by nobody `--ca` trusts) or the handshake failed (the
/// server does not speak TLS, or shares no version or cipher suite with us).
pub const EXIT_TLS: u8 = 9;

/// Exit status: stopped at once by a second signal (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;
/// Exit status: stdout or stderr was closed by its reader (`| head -1`), so the
/// program stopped quietly (128 + SIGPIPE, what a shell shows for `yes | head -1`).
pub const EXIT_CLOSED_OUTPUT: u8 = 141;

/// A failure that ends the program: one line for the user and an exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The process exit status (never 0).
    pub code: u8,
    /// One line, without the `progjar: error:` prefix.
    pub message: String,
}

impl Failure {
    /// A failure with the given exit status and message.
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The name the program was started as, for messages (`progjar`, `progjar-stress`).
fn program_name() -> String {
    let argv0 = std::env::args_os().next().unwrap_or_else(|| "progjar".into());
    let path = std::path::Path::new(&argv0);
    path.file_name().unwrap_or(path.as_os_str()).to_string_lossy().into_owned()
}

/// Marks an argument that is not UTF-8 in the text handed to argh, which takes
/// only `&str`: a Unicode noncharacter, which no real argument contains.
const NOT_TEXT: char = '\u{FDD0}';

/// The arguments as the kernel gave them (any bytes), for [`os_arg`].
static RAW_ARGS: OnceLock<Vec<OsString>> = OnceLock::new();

/// The arguments as text for argh: a non-UTF-8 argument becomes a marker that
/// [`os_arg`] turns back into its bytes, or that a parser of text rejects.
fn args_as_text() -> Vec<String> {
    let raw = RAW_ARGS.get_or_init(|| std::env::args_os().skip(1).collect());
    let text = |(i, arg): (usize, &OsString)| match arg.to_str() {
        Some(s) => s.to_string(),
        None => format!("{NOT_TEXT}{i}"),
    };
    raw.iter().enumerate().map(text).collect()
}

/// A parsed argument as the bytes it was given in: a path, a host name or a
/// message may be any bytes, not only UTF-8.
pub fn os_arg(parsed: String) -> OsString {
    let raw = parsed.strip_prefix(NOT_TEXT).and_then(|i| i.parse::<usize>().ok());
    match raw.and_then(|i| RAW_ARGS.get()?.get(i)) {
        Some(arg) => arg.clone(),
        None => parsed.into(),
    }
}

/// `text` with every non-UTF-8 argument shown as its bytes would print (U+FFFD
/// for the bytes that are not text), for error lines.
fn readable(text: &str) -> String {
    let Some(raw) = RAW_ARGS.get() else { return text.to_string() };
    let mut out = text.to_string();
    for (i, arg) in raw.iter().enumerate().rev() {
        if arg.to_str().is_none() {
            out = out.replace(&format!("{NOT_TEXT}{i}"), &arg.to_string_lossy());
        }
    }
    out
}

/// Parse the command line into `T`; see [`parse_args_with_version`]. `--version`
/// prints the library's version, which is every workspace binary's.
pub fn parse_args<T: FromArgs>() -> T {
    parse_args_with_version(env!("CARGO_PKG_VERSION"))
}

/// Parse the command line into `T`: print help (or `--version`, `-V`: the name
/// and `version`) and exit 0, or print one error line and exit 2. Also makes a
/// closed stdout or stderr end the program quietly.
pub fn parse_args_with_version<T: FromArgs>(version: &str) -> T {
    quiet_on_closed_output();
    let args = args_as_text();
    let name = program_name();
    // `progjar --version`, and `progjar server --version` too (nothing else there
    // can mean a version: a command's options all take values or are flags).
    let asks_version = |a: &String| a == "--version" || a == "-V";
    if args.first().is_some_and(asks_version) || (args.len() == 2 && asks_version(&args[1])) {
        let _ = writeln!(io::stdout(), "{name} {version}");
        std::process::exit(EXIT_OK.into())
    }
    let rest: Vec<&str> = args.iter().map(String::as_str).collect();
    match T::from_args(&[name.as_str()], &rest) {
        Ok(parsed) => parsed,
        Err(EarlyExit { output, status: Ok(()) }) => {
            // `--help` or `-h`: the help text goes to stdout, like every Unix tool.
            let _ = writeln!(io::stdout(), "{output}");
            std::process::exit(EXIT_OK.into())
        }
        Err(EarlyExit { output, status: Err(()) }) => {
            usage_error(output.lines().find(|l| !l.trim().is_empty()).unwrap_or("bad arguments"))
        }
    }
}

/// [`parse_args_with_version`] for a program made of the subcommands `C`: run
/// with no argument at all, it lists them, one line each, and exits 2.
pub fn parse_command<T: FromArgs, C: SubCommands>(version: &str) -> T {
    if std::env::args_os().len() <= 1 {
        let name = program_name();
        let mut text = format!("{name} {version}: one of these commands is needed:\n");
        let width = C::COMMANDS.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for command in C::COMMANDS {
            text.push_str(&format!(
                "  {:<width$} {}\n",
                command.name,
                first_sentence(command.description)
            ));
        }
        text.push_str(&format!("Run `{name} COMMAND --help` for its options."));
        let _ = writeln!(io::stderr(), "{text}");
        std::process::exit(EXIT_USAGE.into())
    }
    parse_args_with_version(version)
}

/// The first sentence of a doc comment (argh joins its lines with spaces).
fn first_sentence(doc: &str) -> &str {
    let end = doc.find(". ").map_or(doc.len(), |i| i + 1);
    doc[..end].trim_end_matches(':').trim()
}

/// Print one usage error line (with a pointer to `--help`) and exit 2.
pub fn usage_error(message: &str) -> ! {
    let name = program_name();
    let _ = writeln!(io::stderr(), "{name}: {} (see {name} --help)", readable(message.trim()));
    std::process::exit(EXIT_USAGE.into())
}

/// Turn a command's result into the process exit status, printing the failure line.
pub fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.message.is_empty() {
                // A closed stderr leaves only the exit status to tell.
                let _ = writeln!(io::stderr(), "{}", error_line(&failure));
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Write `text` to stdout. A closed stdout (`| head -1`) is a [`Failure`] that
/// ends the program quietly with [`EXIT_CLOSED_OUTPUT`]; other errors say so.
pub fn write_stdout(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            Err(Failure::new(EXIT_CLOSED_OUTPUT, String::new()))
        }
        Err(e) => Err(Failure::new(EXIT_FAILURE, format!("cannot write to stdout: {e}"))),
    }
}

/// A `println!` or `eprintln!` to a closed pipe panics in std; for a command-line
/// tool that is the reader saying "enough" (`| head -2`), so end quietly with
/// [`EXIT_CLOSED_OUTPUT`] instead, like a Unix tool stopped by SIGPIPE. Every
/// other panic goes to the default hook.
fn quiet_on_closed_output() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload.downcast_ref::<String>().map(String::as_str);
        let message = message.or_else(|| payload.downcast_ref::<&str>().copied()).unwrap_or("");
        let epipe = io::Error::from_raw_os_error(libc::EPIPE).to_string();
        if message.starts_with("failed printing to std") && message.ends_with(&epipe) {
            std::process::exit(EXIT_CLOSED_OUTPUT.into());
        }
        default(info)
    }));
}

/// The line that reports a failure: `progjar: error: MESSAGE`.
pub fn error_line(failure: &Failure) -> String {
    format!("{}: error: {}", program_name(), failure.message)
}
