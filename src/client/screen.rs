//! `-i`: the echo on the terminal, marked apart from the lines typed.
//!
//! The terminal shows each typed line itself (its own echo, before anything is
//! sent), so printing the server's echo as it is showed every line twice with
//! nothing to tell which was which. Each line of the echo starts with
//! [`MARK`]. Two writers share the screen: the terminal, echoing what is typed,
//! and us; so that every echo line starts at the left edge, the writer thread
//! tells us (through [`Typed`]) what was typed, and a typed partial line
//! (Ctrl-D after `abc`) is ended before the echo is printed. [`end_line`] ends
//! our own partial line before a log line or the summary.
//!
//! The state is the process's one terminal, hence a static: `-i` takes one server.

use std::io::{self, IsTerminal, Read, Write};
use std::sync::{Mutex, MutexGuard};

/// What starts each line of the echo on the screen.
pub const MARK: &str = "echo: ";

/// Where the terminal's cursor is, as far as what was typed and printed tells.
struct Cursor {
    /// Something was typed since the echo was last printed.
    typed_since: bool,
    /// The cursor is not at the start of a line.
    mid_line: bool,
    /// The echo's current line has not ended (its last byte printed was not `\n`).
    echo_open: bool,
}

static CURSOR: Mutex<Cursor> =
    Mutex::new(Cursor { typed_since: false, mid_line: false, echo_open: false });

/// A poisoned lock only means another thread panicked holding it; the state is still valid.
fn cursor() -> MutexGuard<'static, Cursor> {
    CURSOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Print one piece of the echo on stdout, each of its lines marked.
pub(super) fn print(piece: &[u8]) -> io::Result<()> {
    if piece.is_empty() {
        return Ok(());
    }
    let mut cursor = cursor();
    let mut text = Vec::with_capacity(piece.len() + 2 * MARK.len());
    // After typing, the echo starts a line of its own, even one that continues.
    let fresh_line = std::mem::take(&mut cursor.typed_since) || !cursor.echo_open;
    if fresh_line {
        if cursor.mid_line {
            text.push(b'\n');
        }
        text.extend_from_slice(MARK.as_bytes());
    }
    let (body, last) = piece.split_at(piece.len() - 1);
    for &b in body {
        text.push(b);
        if b == b'\n' {
            text.extend_from_slice(MARK.as_bytes());
        }
    }
    text.extend_from_slice(last);
    let ends_line = last == b"\n";
    (cursor.mid_line, cursor.echo_open) = (!ends_line, !ends_line);
    // Flushed per piece: someone is watching the echo arrive.
    let mut out = io::stdout().lock();
    out.write_all(&text).and_then(|()| out.flush())
}

/// End the line the cursor is on, if it is not at a line's start: before a
/// log line or the summary, which would otherwise follow a partial line.
pub(super) fn end_line() -> io::Result<()> {
    let mut cursor = cursor();
    if !cursor.mid_line {
        return Ok(());
    }
    (cursor.mid_line, cursor.echo_open) = (false, false);
    let mut out = io::stdout().lock();
    out.write_all(b"\n").and_then(|()| out.flush())
}

/// Standard input as typed at the terminal, telling the screen what each read
/// put on it (the terminal echoed it as it was typed).
pub(super) struct Typed {
    stdin: io::Stdin,
    /// Standard input is the terminal (not a pipe, whose bytes are not on the screen).
    on_screen: bool,
}

impl Typed {
    pub(super) fn new() -> Typed {
        let stdin = io::stdin();
        let on_screen = stdin.is_terminal();
        Typed { stdin, on_screen }
    }
}

impl Read for Typed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdin.read(buf)?;
        if n == 0 {
            // Ctrl-D: the writer is about to log its FIN; give that line a line of its own.
            // A failed write shows again, and is reported, at the next echo or the summary.
            let _ = end_line();
            return Ok(0);
        }
        if !self.on_screen {
            return Ok(n);
        }
        let mut cursor = cursor();
        cursor.typed_since = true;
        cursor.mid_line = buf[n - 1] != b'\n';
        Ok(n)
    }
}
