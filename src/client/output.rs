//! `--output`: where the echo is written as it arrives (a file, or `-` for stdout).
//!
//! The course's file variant writes the echo back under another name
//! (`sendimage.jpg` → `recvimage.jpg`). Each piece is written as soon as it is
//! read, never collected, so any size costs no memory; the checker has already
//! compared it with what was sent, so the summary's "identical" is about the file.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::cli::{Failure, EXIT_FILE};

/// Where the echo goes besides the checker.
pub(super) enum Output {
    /// Nowhere: only checked (the default).
    None,
    /// Standard output: `--output -` and interactive mode.
    Stdout,
    File {
        path: PathBuf,
        file: File,
    },
}

impl Output {
    /// Create (or truncate) the file before connecting: a bad path costs no connection.
    pub(super) fn open(path: Option<&Path>) -> Result<Output, Failure> {
        match path {
            None => Ok(Output::None),
            Some(p) if p.as_os_str() == "-" => Ok(Output::Stdout),
            Some(p) => match File::create(p) {
                Ok(file) => Ok(Output::File { path: p.to_path_buf(), file }),
                Err(e) => {
                    Err(Failure::new(EXIT_FILE, format!("cannot write {}: {e}", p.display())))
                }
            },
        }
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
            Output::File { file, .. } => file.write_all(piece),
        }
    }

    /// True when the echo goes to stdout, so the summary must go to stderr.
    pub(super) fn is_stdout(&self) -> bool {
        matches!(self, Output::Stdout)
    }

    /// The file's name, for the summary and errors (`None` for stdout).
    pub(super) fn file_name(&self) -> Option<String> {
        match self {
            Output::File { path, .. } => Some(path.display().to_string()),
            Output::Stdout | Output::None => None,
        }
    }
}
