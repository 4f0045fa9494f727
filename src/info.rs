//! Socket info (stub: being written).

use crate::cli::Failure;

/// `progjar info`'s settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Remote host to look up.
    pub remote: String,
    /// Port for the lookup.
    pub port: u16,
}

/// Print the report.
pub fn run(_config: Config) -> Result<(), Failure> {
    Err(Failure::new(1, "not yet"))
}
