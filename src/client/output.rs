//! `--output`: where the echo is written as it arrives (a file, or `-` for stdout).
//!
//! The course's file variant writes the echo back under another name
//! (`sendimage.jpg` → `recvimage.jpg`). Each piece is written as soon as it is
//! read, never collected, so any size costs no memory; the checker has already
//! compared it with what was sent, so the summary's "identical" is about the file.
//! A file is written beside its name and renamed at the end (`echo_file.rs`);
//! `-i` prints the echo marked (`screen.rs`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::echo_file::{EchoFile, Saved};
use super::same_file::{self, Input};
use super::screen;
use super::source::Source;
use crate::cli::{Failure, EXIT_FILE};

/// Where the echo goes besides the checker.
pub(super) enum Output {
    /// Nowhere: only checked (the default).
    None,
    /// Standard output, byte for byte: `--output -`.
    Stdout,
    /// The terminal, each echo line marked: `--interactive`.
    Screen,
    /// A file, under its name only once complete and identical.
    File(EchoFile),
    /// Something that is not a regular file (`/dev/null`, a named pipe): written
    /// as it is, since it cannot be renamed over and holds nothing to lose.
    Device { name: String, file: File },
}

impl Output {
    /// Check and prepare `path` before connecting, so a bad path costs no
    /// connection; refuse (exit 2) to write over `source`'s own file.
    pub(super) fn open(path: Option<&Path>, source: &Source) -> Result<Output, Failure> {
        let Some(path) = path else { return Ok(Output::None) };
        let input = match source {
            Source::File { path, file, .. } => Some(Input::File { path, file }),
            Source::Stdin | Source::Typed => Some(Input::Stdin),
            Source::Message(_) | Source::Generated(_) => None,
        };
        if let Some(input) = input {
            same_file::refuse_output_over_input(input, path)?;
        }
        if path.as_os_str() == "-" {
            return Ok(if matches!(source, Source::Typed) {
                Output::Screen
            } else {
                Output::Stdout
            });
        }
        let fail =
            |e: io::Error| Failure::new(EXIT_FILE, format!("cannot write {}: {e}", path.display()));
        let special = fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir());
        if special {
            let file = File::create(path).map_err(fail)?;
            return Ok(Output::Device { name: path.display().to_string(), file });
        }
        EchoFile::create(path).map(Output::File).map_err(fail)
    }

    /// Write one piece of the echo.
    pub(super) fn write(&mut self, piece: &[u8]) -> io::Result<()> {
        match self {
            Output::None => Ok(()),
            // Flushed per piece: someone is watching the echo arrive.
            Output::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(piece).and_then(|()| out.flush())
            }
            Output::Screen => screen::print(piece),
            Output::File(file) => file.write(piece),
            Output::Device { file, .. } => file.write_all(piece),
        }
    }

    /// The echo has ended: on the terminal, end its partial line.
    pub(super) fn end_line(&self) -> io::Result<()> {
        match self {
            Output::Screen => screen::end_line(),
            _ => Ok(()),
        }
    }

    /// True when the echo goes to stdout, so the summary must go to stderr.
    pub(super) fn is_stdout(&self) -> bool {
        matches!(self, Output::Stdout | Output::Screen)
    }

    /// The file's name, for errors (`None` for stdout).
    pub(super) fn file_name(&self) -> Option<String> {
        match self {
            Output::File(file) => Some(file.name().to_string()),
            Output::Device { name, .. } => Some(name.clone()),
            Output::None | Output::Stdout | Output::Screen => None,
        }
    }

    /// The exchange is over: put the echo under its name if it is `complete`
    /// and identical, or keep what came apart. `None` when no file was written.
    pub(super) fn finish(self, complete: bool) -> Option<Saved> {
        match self {
            Output::File(file) => Some(file.finish(complete)),
            Output::Device { name, .. } if complete => Some(Saved::Complete { name }),
            Output::Device { name, .. } => Some(Saved::Written { name }),
            Output::None | Output::Stdout | Output::Screen => None,
        }
    }
}
