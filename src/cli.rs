//! What every progjar binary does with its command line and its exit status.
//!
//! argh prints several lines and exits 1 on a bad argument; scripts and students
//! are better served by one line on stderr and the conventional usage status 2
//! (what `ncat`, `iperf3` and the BSD tools use). Runtime failures print one
//! `progjar: error: ...` line and exit with the code the failure carries.

use std::fmt;
use std::process::ExitCode;

use argh::{EarlyExit, FromArgs};

/// Exit status for a bad command line.
pub const EXIT_USAGE: u8 = 2;

/// Exit status for a runtime failure that has no more specific code.
pub const EXIT_FAILURE: u8 = 1;

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
    std::env::args()
        .next()
        .as_deref()
        .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
        .unwrap_or_else(|| "progjar".to_string())
}

/// Parse `std::env::args()` into `T`; print help and exit 0, or print one error
/// line and exit 2.
pub fn parse_args<T: FromArgs>() -> T {
    let args: Vec<String> = std::env::args().collect();
    let name = program_name();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match T::from_args(&[name.as_str()], &rest) {
        Ok(parsed) => parsed,
        Err(EarlyExit { output, status: Ok(()) }) => {
            // `--help` or `-h`: the help text goes to stdout, like every Unix tool.
            println!("{output}");
            std::process::exit(0)
        }
        Err(EarlyExit { output, status: Err(()) }) => {
            usage_error(output.lines().find(|l| !l.trim().is_empty()).unwrap_or("bad arguments"))
        }
    }
}

/// Print one usage error line (with a pointer to `--help`) and exit 2.
pub fn usage_error(message: &str) -> ! {
    let name = program_name();
    eprintln!("{name}: {} (see {name} --help)", message.trim());
    std::process::exit(EXIT_USAGE.into())
}

/// Turn a command's result into the process exit status, printing the failure line.
pub fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}", error_line(&failure));
            ExitCode::from(failure.code)
        }
    }
}

/// The line that reports a failure: `progjar: error: MESSAGE`.
pub fn error_line(failure: &Failure) -> String {
    format!("{}: error: {}", program_name(), failure.message)
}
