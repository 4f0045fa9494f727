//! The blocking client (stub: being written).

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::Failure;

/// The course client's message: 46 bytes.
pub const DEFAULT_MESSAGE: &str = "INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ";

/// What to send.
#[derive(Debug, Clone)]
pub enum Payload {
    /// A text message.
    Message(String),
    /// A file's content; `-` is standard input.
    File(PathBuf),
}

/// The client's settings, from `progjar client`'s command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Host name or address of the server.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// What to send.
    pub payload: Payload,
    /// Bytes asked of each read of the echo.
    pub chunk: usize,
    /// Connect and read timeout.
    pub timeout: Duration,
}

/// Send the payload, read the echo, verify it.
pub fn run(_config: Config) -> Result<(), Failure> {
    Err(Failure::new(1, "not yet"))
}
