//! progjar (crate doc being written).
pub mod access;
pub mod cli;
pub mod client;
pub mod info;
pub mod limits;
pub mod logging;
pub mod parse;
pub mod preview;
pub mod server;
