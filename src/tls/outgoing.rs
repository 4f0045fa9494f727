//! Where a TLS session's bytes to send go: gathered in a room the owner lends
//! (a loop-wide scratch, so that a handshake flight or the records of one
//! read's echo leave in one write), then handed to the owner's [`Transmit`]
//! (its socket, and what it keeps of what the socket would not take). And
//! putting rustls's records in that room: a handshake record, data encrypted
//! a record at a time, `close_notify`; when the room is full, what is in it
//! is sent first.

use std::io;
use std::mem;

use rustls::unbuffered::{EncodeError, EncodeTlsData, EncryptError, WriteTraffic};

/// The most data one TLS record carries.
pub const MAX_FRAGMENT: usize = 16 * 1024;

/// Why a session ended.
#[derive(Debug)]
pub enum Error {
    /// The peer broke TLS or gave up; the alert saying why was sent if it could be.
    Tls(rustls::Error),
    /// The socket failed, or there was no memory to carry a record over.
    Io(io::Error),
    /// A record or handshake message larger than any buffer given: no TLS peer sends one.
    TooLarge,
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// Where a session's TLS bytes go: the owner's socket, in order.
pub trait Transmit {
    /// Send `tls` after everything sent before (write what the socket takes,
    /// keep the rest); an error ends the session.
    fn transmit(&mut self, tls: &[u8]) -> io::Result<()>;
}

/// The room TLS bytes to send are gathered in (a loop-wide scratch), so that a
/// handshake flight, or the records of one read's echo, leave in one write.
#[derive(Debug)]
pub struct Out<'a, T: Transmit> {
    room: &'a mut [u8],
    pub(super) len: usize,
    to: T,
}

impl<'a, T: Transmit> Out<'a, T> {
    /// Gather in `room` (at least one record of the largest size,
    /// `session::MAX_RECORD`), send through `to`.
    pub fn new(room: &'a mut [u8], to: T) -> Out<'a, T> {
        Out { room, len: 0, to }
    }

    /// Send what was gathered so far.
    pub fn flush(&mut self) -> io::Result<()> {
        match mem::take(&mut self.len) {
            0 => Ok(()),
            n => self.to.transmit(&self.room[..n]),
        }
    }

    /// Send what was gathered and hand back the way out (with its counters).
    pub fn finish(mut self) -> io::Result<T> {
        self.flush()?;
        Ok(self.to)
    }

    /// Bytes gathered and not sent yet.
    pub fn gathered(&self) -> usize {
        self.len
    }

    pub(super) fn free(&mut self) -> &mut [u8] {
        &mut self.room[self.len..]
    }
}

/// Put one handshake record in `out`, sending what is there first if it is full.
pub(super) fn encode_into<D, T: Transmit>(
    encode: &mut EncodeTlsData<'_, D>,
    out: &mut Out<'_, T>,
) -> Result<(), Error> {
    match encode.encode(out.free()) {
        Ok(n) => out.len += n,
        Err(EncodeError::InsufficientSize(_)) => {
            out.flush()?;
            out.len += encode.encode(out.free()).map_err(|_| Error::TooLarge)?;
        }
        Err(EncodeError::AlreadyEncoded) => {}
    }
    Ok(())
}

/// Encrypt `data` into `out`, a record (16 KiB) at a time, sending what is
/// there whenever the next record does not fit.
pub(super) fn encrypt_into<D, T: Transmit>(
    write: &mut WriteTraffic<'_, D>,
    data: &[u8],
    out: &mut Out<'_, T>,
) -> Result<(), Error> {
    for piece in data.chunks(MAX_FRAGMENT) {
        let n = match write.encrypt(piece, out.free()) {
            Ok(n) => n,
            Err(EncryptError::InsufficientSize(_)) => {
                out.flush()?;
                write.encrypt(piece, out.free()).map_err(|_| Error::TooLarge)?
            }
            Err(EncryptError::EncryptExhausted) => {
                return Err(Error::Tls(rustls::Error::EncryptError));
            }
        };
        out.len += n;
    }
    Ok(())
}

/// Put `close_notify` in `out`.
pub(super) fn close_into<D, T: Transmit>(
    write: &mut WriteTraffic<'_, D>,
    out: &mut Out<'_, T>,
) -> Result<(), Error> {
    let n = match write.queue_close_notify(out.free()) {
        Ok(n) => n,
        Err(_) => {
            out.flush()?;
            write.queue_close_notify(out.free()).map_err(|_| Error::TooLarge)?
        }
    };
    out.len += n;
    Ok(())
}
