//! The recording's file: opened without waiting, written by the background
//! writer's thread (`background.rs`), the one place that may wait on it.
//!
//! The loop opens the file at start (so a bad path stops the server before
//! `listening on`) but never waits for it: the open does not block, and every
//! write happens in the writer's thread. Two things can make a file wait or fail:
//!
//! - A FIFO (`mkfifo`) that nothing reads yet. A blocking `open` would wait
//!   for a reader before the server even listens, with no word. Like a shell's
//!   `cmd > fifo`, the recording waits for its reader, but here the server
//!   serves meanwhile: this thread opens the FIFO when a reader comes, and the
//!   loop's lines queue up (and are dropped and counted, past the queue).
//! - A write error: the disk is full, the file hit its size limit, the FIFO's
//!   reader left. Recording stops with a log line that says which, and, on a
//!   regular file, the cut line is removed and a `# stopped` note replaces the
//!   last lines before it (as few as the note needs), so the file still ends
//!   with whole lines and says why it ends. A file that cannot be cut (a FIFO,
//!   `/dev/full`) keeps its cut line, which `record-page` reports.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use log::warn;
use nix::fcntl::{fcntl, FcntlArg, OFlag};

use super::format::NOTE;
use crate::background;

/// Where the lines go: the file, or a FIFO to open once something reads it.
#[derive(Debug)]
pub(super) enum Sink {
    /// Opened and ready (a regular file, a device, a FIFO with its reader).
    File(File),
    /// A FIFO nobody reads yet.
    Fifo(PathBuf),
}

/// Open (create or truncate) `path` for recording without ever waiting.
pub(super) fn open(path: &Path) -> io::Result<Sink> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true).custom_flags(libc::O_NONBLOCK);
    match options.open(path) {
        Ok(file) => {
            // The open could not wait; the writes may (in this thread only).
            set_blocking(&file)?;
            Ok(Sink::File(file))
        }
        // ENXIO: a FIFO opened for writing with no reader (open(2)).
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) && is_fifo(path) => {
            Ok(Sink::Fifo(path.to_path_buf()))
        }
        Err(e) => Err(e),
    }
}

fn is_fifo(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Clear `O_NONBLOCK`, which `open` needed and the writes must not have (a
/// full FIFO would fail them with `EAGAIN` instead of letting them wait).
fn set_blocking(file: &File) -> io::Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(file, FcntlArg::F_GETFL)?);
    fcntl(file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(())
}

/// How many line ends the writer remembers: enough for a note to replace
/// lines as short as 5 bytes.
const LINE_ENDS: usize = 32;

/// The background writer's output: the file, and where its whole lines end.
pub(super) struct Output {
    sink: Option<Sink>,
    file: Option<File>,
    /// The path, as the log shows it.
    path: String,
    /// Bytes on disk, all of them whole lines (batches end with a newline).
    written: u64,
    /// The end of the first line (the header): a note never replaces it.
    header_end: Option<u64>,
    /// The ends of the last lines written, oldest first.
    ends: VecDeque<u64>,
}

impl Output {
    /// The output for a file opened by [`open`].
    pub(super) fn new(sink: Sink, path: &Path) -> Output {
        let path = path.display().to_string();
        let ends = VecDeque::with_capacity(LINE_ENDS);
        Output { sink: Some(sink), file: None, path, written: 0, header_end: None, ends }
    }

    /// The file, opened now if it is a FIFO: this waits for a reader, in the
    /// writer's thread only (the loop's lines queue, then drop, meanwhile).
    fn file(&mut self) -> io::Result<&mut File> {
        if let Some(sink) = self.sink.take() {
            let file = match sink {
                Sink::File(file) => file,
                Sink::Fifo(fifo) => {
                    OpenOptions::new().write(true).open(&fifo).inspect_err(|e| {
                        warn!("recording stopped: cannot open {}: {e}", self.path);
                    })?
                }
            };
            self.file = Some(file);
        }
        self.file.as_mut().ok_or_else(|| io::ErrorKind::NotFound.into())
    }
}

impl background::Output for Output {
    /// Write whole lines; when a write fails, stop the recording as the top
    /// of this file says.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let file = self.file()?;
        if let Err((done, e)) = write_all(file, bytes) {
            self.remember(&bytes[..done]);
            let at = self.written + done as u64;
            self.stop(&e, at);
            return Err(e);
        }
        self.remember(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn dropped(&mut self, n: u64) -> io::Result<()> {
        let lines = crate::units::grouped(n);
        let note =
            format!("{NOTE} dropped {lines} lines: the file was not taking them fast enough\n");
        self.write(note.as_bytes())
    }
}

/// `write_all` that says how much it wrote before failing.
fn write_all(file: &mut File, mut bytes: &[u8]) -> Result<(), (usize, io::Error)> {
    let total = bytes.len();
    while !bytes.is_empty() {
        match file.write(bytes) {
            Ok(0) => return Err((total - bytes.len(), ErrorKind::WriteZero.into())),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err((total - bytes.len(), e)),
        }
    }
    Ok(())
}

impl Output {
    /// Note where the lines of `bytes` (written at `self.written`) end.
    fn remember(&mut self, bytes: &[u8]) {
        if self.header_end.is_none() {
            let first = bytes.iter().position(|&b| b == b'\n');
            self.header_end = first.map(|i| self.written + i as u64 + 1);
        }
        // Only the last few matter: scan back from the end, never the whole batch.
        let mut ends: Vec<u64> = Vec::with_capacity(LINE_ENDS);
        let newlines = bytes.iter().enumerate().rev().filter(|(_, &b)| b == b'\n');
        for (i, _) in newlines.take(LINE_ENDS) {
            ends.push(self.written + i as u64 + 1);
        }
        for end in ends.into_iter().rev() {
            if self.ends.len() == LINE_ENDS {
                self.ends.pop_front();
            }
            self.ends.push_back(end);
        }
    }

    /// A write failed with `e` after `at` bytes: say so in the log and, if
    /// the file can be cut, in a last line that fits where the writes stopped.
    fn stop(&mut self, e: &io::Error, at: u64) {
        warn!("recording stopped: cannot write {}: {e}", self.path);
        let note = format!("{NOTE} stopped: cannot write the recording: {e}\n");
        let Some(header_end) = self.header_end else { return };
        // The last whole line that leaves room for the note, or else the last whole line.
        let room = at.saturating_sub(note.len() as u64);
        let whole = self.ends.iter().copied().filter(|&end| end >= header_end);
        let fits = whole.clone().filter(|&end| end <= room).max();
        let Some(cut) = fits.or_else(|| whole.max()) else { return };
        let Some(file) = self.file.as_mut() else { return };
        // A FIFO or a device cannot be cut: its cut line stays for record-page to report.
        if file.set_len(cut).is_err() {
            return;
        }
        let noted = file.seek(SeekFrom::Start(cut));
        let noted = noted.and_then(|_| file.write_all(note.as_bytes()));
        if noted.is_err() {
            let _ = file.set_len(cut);
        }
    }
}
