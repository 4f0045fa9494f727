//! The recording's format, written down once: the writer (`recorder.rs`)
//! writes these words and the reader (`read.rs`) expects them.
//!
//! ```text
//! progjar-record 1 read_size=16384 max_pending=65536 limit=16777216
//! 1520 eL:r o0                          <- µs since start; listener readable; conn 0 accepted
//! 1733 e0:r t0:46:46:0:r                <- conn 0 readable; its turn read 46 B, wrote 46 B,
//!                                          owes 0 B, now asks for readable (interest r)
//! 1801 e0:rR t0:0:0:0:r c0              <- its FIN (R): read 0 B, closed
//! # stopped: the recording reached --record-limit (16777216 bytes)
//! ```
//!
//! The first line is [`MAGIC`] and the server's settings. Then one line per
//! wake-up of the loop: its time, then items in the order the loop did them:
//! `e<token>:<kinds>` an event ([`EVENT`]; token [`LISTENER`] or [`SIGNALS`]
//! or a connection's key, or for a server whose connections have several
//! sockets (the relay: [`SOURCES`]`=2` in the settings) `<key>.<socket>`,
//! e.g. `e3.1:r`, socket 1 of connection 3; [`KINDS`]); `o<key>` a connection accepted
//! ([`OPEN`]); `t<key>:<read>:<written>:<owed>:<interest>` one turn of a
//! connection ([`TURN`], or [`AGAIN`] when the loop came back by itself after
//! a turn that used its read budget, or [`HANDSHAKE`] for a turn of a TLS
//! handshake: bytes are TLS bytes then; interest one of [`INTEREST`]); `c<key>`
//! a connection closed ([`CLOSE`]); `+<n>` ends a line that had no room for n
//! more items ([`LEFT_OUT`]). Lines starting with [`NOTE`] are notes: `#
//! dropped N lines: ...`, and `# stopped: ...` (the limit, or a write error).
//! Every line ends with a newline, so a file that does not was cut short.
//! (Recordings made before TLS have no [`HANDSHAKE`] turns, and read the same.)

/// The first words of a recording, with the format's version.
pub const MAGIC: &str = "progjar-record 1";

/// Starts a note line.
pub const NOTE: char = '#';

/// The setting, in the first line, of a server whose connections have several
/// sockets: `sources=2`. Absent (the echo server: one socket each), an event's
/// token is the connection's key.
pub const SOURCES: &str = "sources";

/// Between a connection's key and its socket in an event's token: `e3.1:r`.
pub const SOCKET: char = '.';

/// An event: `e<token>:<kinds>`.
pub const EVENT: char = 'e';
/// A connection accepted: `o<key>`.
pub const OPEN: char = 'o';
/// A connection's turn: `t<key>:<read>:<written>:<owed>:<interest>`.
pub const TURN: char = 't';
/// A turn the loop came back for by itself (the read budget was used up).
pub const AGAIN: char = 'g';
/// A turn taken while the connection's TLS handshake was going on (it ended
/// in that turn, or had not yet): `h<key>:<read>:<written>:<owed>:<interest>`.
pub const HANDSHAKE: char = 'h';
/// A connection closed: `c<key>`.
pub const CLOSE: char = 'c';
/// Items left out of a line for want of room: `+<n>`, last.
pub const LEFT_OUT: char = '+';

/// The token of the listener in an event.
pub const LISTENER: &str = "L";
/// The token of a stop request in an event: the signal pipe, or the waker
/// another thread stops the loop with.
pub const SIGNALS: &str = "S";

/// Readiness kinds of an event, in the order they are written: readable,
/// writable, read side closed (the peer's FIN), write side closed, error.
pub const KINDS: [char; 5] = ['r', 'w', 'R', 'W', 'x'];

/// Interest bits after a turn.
pub const READ: u8 = 1;
/// See [`READ`].
pub const WRITE: u8 = 2;

/// The interest words, indexed by their bits ([`READ`] | [`WRITE`]): nothing,
/// readable, writable, both.
pub const INTEREST: [&str; 4] = ["-", "r", "w", "rw"];

/// The word for interest bits.
pub fn interest_word(bits: u8) -> &'static str {
    INTEREST[usize::from(bits & (READ | WRITE))]
}

/// The interest bits of a word, if it is one.
pub fn interest_bits(word: &str) -> Option<u8> {
    INTEREST.iter().position(|&w| w == word).map(|bits| bits as u8)
}

/// How an event's token is written: the key alone for a connection with one
/// socket (every recording before relays, and the echo server's still), else
/// `key.socket`.
pub fn token(token: usize, sources: usize) -> (usize, Option<usize>) {
    match sources {
        0 | 1 => (token, None),
        n => (token / n, Some(token % n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_the_key_and_for_several_sockets_the_socket() {
        assert_eq!(token(7, 1), (7, None));
        assert_eq!(token(7, 2), (3, Some(1)));
        assert_eq!(token(6, 2), (3, Some(0)));
    }

    #[test]
    fn interest_words_and_bits_round_trip() {
        for bits in 0..4 {
            assert_eq!(interest_bits(interest_word(bits)), Some(bits));
        }
        assert_eq!(interest_word(READ | WRITE), "rw");
        assert_eq!(interest_bits("wr"), None);
    }
}
