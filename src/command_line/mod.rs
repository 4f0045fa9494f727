//! The `progjar` binary's command lines, one file per kind of command (argh
//! structs and the rules that turn them into the library's `Config`s). They
//! belong to the binary, not the library: nothing else parses them.

mod client;
mod loop_options;
mod others;
mod parsers;

pub use client::{client_config, ClientArgs};
pub use loop_options::{loop_config, proxy_config, server_tls, ProxyArgs, ServerArgs};
pub use others::{CertArgs, InfoArgs, RecordPageArgs};
