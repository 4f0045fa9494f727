//! The recording's writer thread: the one place that may wait on the file.
//!
//! The loop opens the file at start (so a bad path stops the server before
//! `listening on`) but never waits for it: the open does not block, and every
//! write happens here. Two things can make a file wait or fail:
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
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};

use log::warn;

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
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL touch no memory.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How many line ends the writer remembers: enough for a note to replace
/// lines as short as 5 bytes.
const LINE_ENDS: usize = 32;

/// The file and where its whole lines end.
struct Writer {
    file: File,
    /// Bytes on disk, all of them whole lines (batches end with a newline).
    written: u64,
    /// The end of the first line (the header): a note never replaces it.
    header_end: Option<u64>,
    /// The ends of the last lines written, oldest first.
    ends: VecDeque<u64>,
}

/// The writer thread: batches to the file until the loop hangs up or a write
/// fails. Each emptied batch goes back through `spare` to be filled again.
pub(super) fn write_batches(
    sink: Sink,
    path: &str,
    batches: &Receiver<Vec<u8>>,
    spare: &Sender<Vec<u8>>,
) {
    let file = match sink {
        Sink::File(file) => file,
        // Waits for a reader; the loop goes on (its batches queue, then drop).
        Sink::Fifo(fifo) => match OpenOptions::new().write(true).open(&fifo) {
            Ok(file) => file,
            Err(e) => return warn!("recording stopped: cannot open {path}: {e}"),
        },
    };
    let mut w = Writer { file, written: 0, header_end: None, ends: VecDeque::new() };
    for mut batch in batches.iter() {
        if let Err((done, e)) = write_all(&mut w.file, &batch) {
            w.remember(&batch[..done]);
            return w.stop(path, &e, w.written + done as u64);
        }
        w.remember(&batch);
        w.written += batch.len() as u64;
        batch.clear();
        let _ = spare.send(batch);
    }
    let _ = w.file.flush();
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

impl Writer {
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
    fn stop(&mut self, path: &str, e: &io::Error, at: u64) {
        warn!("recording stopped: cannot write {path}: {e}");
        let note = format!("# stopped: cannot write the recording: {e}\n");
        let Some(header_end) = self.header_end else { return };
        // The last whole line that leaves room for the note, or else the last whole line.
        let room = at.saturating_sub(note.len() as u64);
        let whole = self.ends.iter().copied().filter(|&end| end >= header_end);
        let fits = whole.clone().filter(|&end| end <= room).max();
        let Some(cut) = fits.or_else(|| whole.max()) else { return };
        // A FIFO or a device cannot be cut: its cut line stays for record-page to report.
        if self.file.set_len(cut).is_err() {
            return;
        }
        let noted = self.file.seek(SeekFrom::Start(cut));
        let noted = noted.and_then(|_| self.file.write_all(note.as_bytes()));
        if noted.is_err() {
            let _ = self.file.set_len(cut);
        }
    }
}
