//! `progjar server --record FILE` and `progjar record-page`: what the loop did
//! at each wake-up, on disk, and drawn as a page.
//!
//! A trace log (`RUST_LOG=trace`) tells the same story in words, but it is
//! long, slow and hard to draw. The recording is one compact line per return
//! of `poll`, which `progjar record-page` turns into a picture of one thread
//! serving many clients in turn. One concept per file:
//!
//! - `format.rs`: the format, written down once: the first line, the item
//!   letters, the token, kind and interest words, notes.
//! - `recorder.rs`: the server's hooks ([`Recording`]), which build the lines
//!   and hand them to a lossy background writer (`background.rs`) without
//!   waiting; `file.rs`: the file, opened without waiting (a FIFO nobody
//!   reads yet), and what a failed write leaves in it.
//! - `read.rs`: a recording read back, line by line, into a `Visit`;
//!   `census.rs` and `picture.rs`: the two readings `record-page` makes;
//!   `page.rs`: the page they are drawn as; `command.rs`: the command.
//!
//! Imports go one way: `format` ← `file` ← `recorder`, and `format` ← `read`
//! ← `census` ← `picture` ← `page` ← `command`.

pub mod census;
pub mod command;
mod file;
pub mod format;
pub mod page;
pub mod picture;
pub mod read;
mod recorder;

pub use recorder::{Options, Recording, DEFAULT_LIMIT};
