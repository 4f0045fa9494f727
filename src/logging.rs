//! Logging in the course's format.
//!
//! The course's Python programs log through `logging.basicConfig(level=INFO)`,
//! which prints `INFO:root:message`. progjar keeps that shape, with the module
//! name instead of `root` (`INFO:server:connection from ...`), so a student can
//! put the two logs side by side. Logs go to stderr; stdout is kept for output
//! that scripts read (`listening on ...`, summaries, JSON).

use std::io::Write;

/// Start logging to stderr at level `info`, or at whatever `RUST_LOG` says.
///
/// `default_filter_or` (not `filter_level`) is used so that `RUST_LOG` still wins.
pub fn init() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|out, record| {
            // `progjar::client::exchange` logs as `client`: the command, not the file.
            let target = record.target();
            let module = target.split("::").nth(1).unwrap_or(target);
            writeln!(out, "{}:{}:{}", record.level(), module, record.args())
        })
        .init();
}
