//! Bytes shown the way the course's Python logs show them: `b'INI ADALAH '`,
//! and counts with a thousands separator (`7,640`), as logs and pages show them.
//!
//! Both the server (`received ... b'...'`) and the client (each echoed piece)
//! log data this way, so a student sees the same text on both sides and in
//! Wireshark's "Follow TCP stream".

use std::fmt::{self, Write};

/// How many bytes of a piece a log line shows before it writes `...`: enough
/// for the course's 46-byte message, short enough to keep one line per piece.
pub const PREVIEW_BYTES: usize = 64;

/// A `Display` for bytes as Python's `repr(bytes)`, cut after `limit` bytes.
#[derive(Debug)]
pub struct Preview<'a> {
    bytes: &'a [u8],
    limit: usize,
}

/// Show `bytes` as `b'...'`, at most [`PREVIEW_BYTES`] of them.
pub fn preview(bytes: &[u8]) -> Preview<'_> {
    Preview { bytes, limit: PREVIEW_BYTES }
}

/// Show all of `bytes` as `b'...'`.
pub fn full(bytes: &[u8]) -> Preview<'_> {
    Preview { bytes, limit: usize::MAX }
}

impl fmt::Display for Preview<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.bytes[..self.bytes.len().min(self.limit)];
        // Python picks double quotes when the bytes hold a single quote and no double one.
        let quote = if shown.contains(&b'\'') && !shown.contains(&b'"') { '"' } else { '\'' };
        f.write_char('b')?;
        f.write_char(quote)?;
        for &b in shown {
            match b {
                b'\\' => f.write_str("\\\\")?,
                b'\n' => f.write_str("\\n")?,
                b'\r' => f.write_str("\\r")?,
                b'\t' => f.write_str("\\t")?,
                _ if b as char == quote => write!(f, "\\{quote}")?,
                0x20..=0x7e => f.write_char(b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        f.write_char(quote)?;
        if shown.len() < self.bytes.len() {
            write!(f, "... ({} bytes)", self.bytes.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_python_repr() {
        assert_eq!(full(b"INI ADALAH ").to_string(), "b'INI ADALAH '");
        assert_eq!(full(b"a\nb\x00\xff\\").to_string(), "b'a\\nb\\x00\\xff\\\\'");
        assert_eq!(full(b"it's").to_string(), "b\"it's\"");
        assert_eq!(full(b"'\"").to_string(), "b'\\'\"'");
        assert_eq!(
            preview(&[b'a'; 100]).to_string(),
            format!("b'{}'... (100 bytes)", "a".repeat(64))
        );
    }
}
