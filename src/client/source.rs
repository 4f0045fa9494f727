//! The payload: where the bytes to send come from.
//!
//! A message, a file, standard input and a generated message (`--size`) all
//! become one `Read`, so the exchange has a single path whatever is sent. The
//! file is opened (and checked) before the client touches the network, so a
//! typo in a path costs no connection; with several servers it is opened again
//! for each, so nothing is held in memory.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use log::info;

use super::progress::PIECE_LOG_LIMIT;
use super::screen::{Typed, MARK};
use super::{Payload, DEFAULT_MESSAGE};
use crate::cli::{Failure, EXIT_FILE};
use crate::preview::preview;
use crate::units::plural;

/// Where the payload's bytes come from.
pub(super) enum Source {
    Message(Vec<u8>),
    File {
        path: PathBuf,
        file: File,
        len: Option<u64>,
    },
    Stdin,
    /// `--interactive`: standard input, typed line by line.
    Typed,
    /// `--size`: the course's message, one per line, cut at this many bytes.
    Generated(u64),
}

impl Source {
    /// Open the payload; an unreadable file or a directory is [`EXIT_FILE`].
    pub(super) fn open(payload: &Payload) -> Result<Source, Failure> {
        match payload {
            Payload::Message(bytes) => Ok(Source::Message(bytes.clone())),
            Payload::File(path) if path.as_os_str() == "-" => Ok(Source::Stdin),
            Payload::File(path) => open_file(path),
            Payload::Interactive => Ok(Source::Typed),
            Payload::Generated(len) => Ok(Source::Generated(*len)),
        }
    }

    /// The payload's size, when it is known before sending (not for standard input or pipes).
    pub(super) fn len(&self) -> Option<u64> {
        match self {
            Source::Message(bytes) => Some(bytes.len() as u64),
            Source::File { len, .. } => *len,
            Source::Stdin | Source::Typed => None,
            Source::Generated(len) => Some(*len),
        }
    }

    /// The source's name in error messages.
    pub(super) fn name(&self) -> String {
        match self {
            Source::Message(_) => "the message".to_string(),
            Source::File { path, .. } => path.display().to_string(),
            Source::Stdin | Source::Typed => "standard input".to_string(),
            Source::Generated(_) => "the generated message".to_string(),
        }
    }

    /// Log what is sent, in the course's words.
    pub(super) fn announce(&self) {
        match self {
            // The course logs the message itself; bytes that are not text show as b'...'.
            Source::Message(bytes) if bytes.len() as u64 <= PIECE_LOG_LIMIT => {
                match std::str::from_utf8(bytes) {
                    Ok(text) => info!("sending {text}"),
                    Err(_) => info!("sending {}", preview(bytes)),
                }
            }
            Source::Message(bytes) => {
                info!("sending a message ({})", plural(bytes.len() as u64, "byte"))
            }
            Source::File { len: Some(n), .. } => {
                info!("sending file content ({})", plural(*n, "byte"))
            }
            Source::File { path, len: None, .. } => {
                info!("sending file content ({})", path.display())
            }
            Source::Stdin => info!("sending standard input"),
            Source::Typed => info!(
                "interactive: each line you type is sent, and its echo shown marked \"{MARK}\"; \
                 Ctrl-D ends"
            ),
            Source::Generated(n) => info!(
                "sending {}: \"{DEFAULT_MESSAGE}\" and a newline, repeated",
                plural(*n, "byte")
            ),
        }
    }

    pub(super) fn into_reader(self) -> Box<dyn Read + Send> {
        match self {
            Source::Message(bytes) => Box::new(io::Cursor::new(bytes)),
            Source::File { file, .. } => Box::new(file),
            Source::Stdin => Box::new(io::stdin()),
            Source::Typed => Box::new(Typed::new()),
            Source::Generated(len) => Box::new(generated(len)),
        }
    }
}

/// The `--size` message: [`DEFAULT_MESSAGE`] and a newline, repeated and cut at
/// `len` bytes. Text, so the echo can be read with `head`; made as it is sent,
/// so any size costs no memory; and the same every time, so it can be checked.
pub fn generated(len: u64) -> impl Read {
    Repeat { line: format!("{DEFAULT_MESSAGE}\n").into_bytes(), pos: 0 }.take(len)
}

/// An endless stream of `line`, repeated.
struct Repeat {
    line: Vec<u8>,
    pos: usize,
}

impl Read for Repeat {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        // Bounded: every pass fills at least one byte of `buf`.
        while n < buf.len() {
            let part = &self.line[self.pos..];
            let k = part.len().min(buf.len() - n);
            buf[n..n + k].copy_from_slice(&part[..k]);
            n += k;
            self.pos = (self.pos + k) % self.line.len();
        }
        Ok(n)
    }
}

fn open_file(path: &Path) -> Result<Source, Failure> {
    let fail = |reason: String| {
        Failure::new(EXIT_FILE, format!("cannot read {}: {reason}", path.display()))
    };
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    // Opening a directory succeeds on Linux; only the first read would fail.
    if meta.is_dir() {
        return Err(fail("it is a directory".to_string()));
    }
    // A regular file knows its size; a pipe or a device (/dev/stdin) does not.
    let len = meta.is_file().then_some(meta.len());
    Ok(Source::File { path: path.to_path_buf(), file, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_message_is_the_course_message_repeated_and_cut() {
        let mut got = String::new();
        generated(100).read_to_string(&mut got).unwrap();
        let line = format!("{DEFAULT_MESSAGE}\n");
        assert_eq!(got, format!("{line}{line}{}", &line[..6]));
    }
}
