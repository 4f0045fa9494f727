//! progjar: a teaching toolkit for the network-programming lab.
//!
//! (Crate doc: see the end of this session; layout below.)
//!
//! # Layout
pub mod access;
pub mod cli;
pub mod client;
pub mod connection;
pub mod idle;
pub mod info;
pub mod limits;
pub mod logging;
pub mod parse;
pub mod preview;
pub mod server;
pub mod throttle;
