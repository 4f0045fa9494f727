//! The exchange: a writer thread sends the payload while this thread reads the echo.
//!
//! # Why a writer thread
//!
//! The course's client sends everything with `sendall` and only then starts to
//! `recv`. That works for 46 bytes, but TCP buffers are finite. While we are not
//! reading, the echo piles up in our receive buffer; when it is full the server
//! cannot send, so (being an echo server with bounded buffers) it stops reading
//! from us; then our send buffer fills and `sendall` blocks. Both sides now wait
//! for each other, forever. With a few megabytes this happens on every machine.
//! So one thread writes while the main thread reads: the reader always drains
//! the echo, the server can always send, and it keeps reading what we write.
//!
//! # Why we half-close
//!
//! In the course's file task the client loops on `recv` until the server closes,
//! but the server only closes when its `recv` returns `b''` — which only happens
//! when the client closes. Both wait; both hang (the reports show a blinking
//! cursor after the last log line). After the last byte, the writer calls
//! `shutdown(Shutdown::Write)`: TCP sends a FIN, the server's `recv` returns
//! `b''`, it closes its side, and our `read` returns 0 (EOF). Now both sides know
//! the exchange is over, and nobody needed to know the length in advance (which
//! standard input does not tell us).
//!
//! # How the echo is checked in bounded memory
//!
//! The writer reads the payload in blocks of [`BLOCK_SIZE`] (a file is streamed,
//! never loaded whole) and hands each block to the reader through a bounded
//! `sync_channel` of [`QUEUE_BLOCKS`] blocks. The reader compares the incoming
//! echo against the queued blocks, so memory stays bounded for any payload size.
//!
//! The writer queues a block **before** it writes it to the socket. If it queued
//! it only after `write_all` returned, the server could echo the first half of a
//! block while the writer is still pushing the second half; the reader would then
//! wait for that block instead of reading the socket, the echo would pile up, the
//! server would stop reading, and `write_all` would never return: the very
//! deadlock the thread is there to avoid. Queued first, every byte that can come
//! back is already in the queue, so the reader never waits for the writer. The
//! writer waits for the queue only when [`QUEUE_BLOCKS`] whole blocks have been
//! sent and not yet echoed; their echo is on its way, and the reader will take them.
//!
//! # Why we wait only [`CLOSE_WAIT`] for the close
//!
//! Once every byte sent has come back identical, the server owes us only its
//! close. A relay that never passes on our FIN (the course's `insecure_proxy.py`,
//! `tools/lab/course_proxy.py`) keeps the server from ever seeing the end, so that
//! close never comes, and waiting a whole `--timeout` for it only delays a verdict
//! that is already known. We wait [`CLOSE_WAIT`] for the close (or for extra bytes,
//! which are still a difference), then finish with success and a note.

use std::io::{self, ErrorKind, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::info;

use super::check::{Block, Checker, Difference, Due, Sent};
use super::interrupt;
use super::link::{Link, Receiver, Sender};
use super::output::Output;
use super::progress::Progress;
use super::source::Source;
use crate::cli::{Failure, EXIT_FAILURE};
use crate::sock::is_peer_gone;
use crate::units::plural;

/// Bytes the writer reads from the payload and writes in one go: 64 KiB is a
/// typical socket buffer and the size Linux's own `cp` uses, so each block costs
/// one read and about one write system call, and a block is small enough that
/// several can be queued without noticeable memory.
pub const BLOCK_SIZE: usize = 64 * 1024;

/// Blocks sent but not yet echoed that the writer may be ahead of the reader:
/// 16 × 64 KiB = 1 MiB covers what is in flight on a LAN (our send buffer, the
/// network, the server's buffers, our receive buffer), so the writer seldom waits,
/// while the client's memory stays bounded whatever the payload size.
pub const QUEUE_BLOCKS: usize = 16;

/// How long the server's close may take once the echo is complete and identical:
/// on loopback or a LAN a close follows the last byte within a millisecond, so
/// 1 s is plenty; it only matters behind a relay that never passes on our FIN
/// (see the module documentation), where waiting longer would not help.
pub const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// How often the reader looks again whether the writer has finished, while
/// everything sent so far has been echoed and the socket is quiet: the writer's
/// end cannot wake a `read()`, and 10 wake-ups a second cost nothing.
const WRITER_POLL: Duration = Duration::from_millis(100);

/// Why the writer stopped before it had sent everything and half-closed.
#[derive(Debug)]
pub(super) enum SendError {
    /// Reading the file or standard input failed.
    Source(io::Error),
    /// Writing to the socket (or half-closing it) failed.
    Socket(io::Error),
    /// The reader gave up and dropped the queue; nothing more is worth sending.
    ReaderGone,
}

/// Why the reader stopped reading the echo.
#[derive(Debug)]
pub(super) enum ReadEnd {
    /// The server closed its side (read returned 0).
    Closed,
    /// No data for a whole timeout while the server owed us bytes.
    TimedOut,
    /// All sent came back, and the server did not close within [`CLOSE_WAIT`].
    NotClosed,
    /// The server reset the connection.
    PeerGone(io::Error),
    /// Another read error.
    Failed(io::Error),
    /// The server sent more than we sent.
    Longer,
    /// Writing the echo to `--output` failed.
    OutputFailed(io::Error),
}

/// What happened in one exchange: everything the verdict is made from.
#[derive(Debug)]
pub(super) struct Transfer {
    pub sent: u64,
    pub received: u64,
    /// Sent bytes whose echo never came (counted only after a close or a reset).
    pub missing: u64,
    pub difference: Option<Difference>,
    pub read_end: ReadEnd,
    /// The writer's result, or `None` if it had not finished when we stopped.
    pub send: Option<Result<u64, SendError>>,
    pub source_name: String,
    /// The file the echo was written to (`--output PATH`), if any.
    pub output_file: Option<String>,
    /// The signal that stopped the exchange (`Ctrl-C`, `SIGTERM`, `SIGHUP`), if one did.
    pub interrupted: Option<&'static str>,
    /// The payload was typed (`-i`): the time is mostly typing, the rate meaningless.
    pub typed: bool,
    /// The longest a block (a typed line) took to come back.
    pub slowest_echo: Option<Duration>,
    /// Until the server closed, or until the echo was complete if it never did.
    pub elapsed: Duration,
    pub timeout: Duration,
}

/// Send `source` on `link` from a writer thread while reading and checking the echo here.
pub(super) fn exchange(
    link: Link,
    source: Source,
    output: &mut Output,
    chunk: usize,
    timeout: Duration,
) -> Result<Transfer, Failure> {
    let (sender, mut receiver, _watch) = set_up(&link, chunk, timeout)
        .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot set up the socket: {e}")))?;

    let source_name = source.name();
    let total = source.len();
    // Typed lines come back on stdout; logging them as pieces too would print each twice.
    let typed = matches!(source, Source::Typed);
    source.announce();
    let start = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let (queue, blocks) = mpsc::sync_channel::<Block>(QUEUE_BLOCKS);
    let writer = spawn_writer(source.into_reader(), sender, queue, Arc::clone(&sent))?;

    let mut checker = Checker::new(blocks, timeout);
    let mut progress = Progress::new(total, typed);
    let echo = Echo {
        chunk,
        timeout,
        checker: &mut checker,
        progress: &mut progress,
        output,
        complete: None,
    };
    let (read_end, ended) = receive(&mut receiver, echo);
    // After the server's close or reset, the writer is done or about to be (a
    // dead socket fails its write at once): wait for it, so the verdict knows
    // whether everything was sent. After a timeout it may be stuck: don't wait;
    // nor after Ctrl-C, when it may be waiting for a line that nobody will type.
    let interrupted = interrupt::stopped_by();
    let missing = match read_end {
        ReadEnd::Closed | ReadEnd::PeerGone(_) if interrupted.is_none() => checker.missing(),
        _ => 0,
    };
    info!("closing");
    let send = finish_writer(writer, &checker, &link.socket);
    Ok(Transfer {
        sent: sent.load(Ordering::SeqCst),
        received: checker.received(),
        missing,
        difference: checker.difference(),
        read_end,
        send,
        source_name,
        output_file: output.file_name(),
        interrupted,
        typed,
        slowest_echo: checker.slowest(),
        elapsed: ended.duration_since(start),
        timeout,
    })
}

/// Set the socket's timeouts and have Ctrl-C watch it; returns the writer's end
/// and the reader's end of the link (see `link.rs`).
fn set_up(
    link: &Link,
    chunk: usize,
    timeout: Duration,
) -> io::Result<(Sender, Receiver, interrupt::Watch)> {
    // One timeout per read() of the echo, and per write() of a block.
    link.socket.set_read_timeout(Some(timeout))?;
    link.socket.set_write_timeout(Some(timeout))?;
    let (sender, receiver) = link.split(chunk)?;
    Ok((sender, receiver, interrupt::watch(&link.socket)?))
}

fn spawn_writer(
    source: Box<dyn Read + Send>,
    sender: Sender,
    queue: SyncSender<Block>,
    sent: Arc<AtomicU64>,
) -> Result<JoinHandle<Result<u64, SendError>>, Failure> {
    thread::Builder::new()
        .name("writer".into())
        .spawn(move || send_all(source, sender, queue, &sent))
        .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot start the writer thread: {e}")))
}

/// The writer thread: stream the source in blocks, queue each, send it, then half-close.
///
/// Returns the bytes sent. On a failure to read the source it shuts the whole
/// connection down, which wakes the reader's blocked `read` with EOF.
fn send_all(
    mut source: Box<dyn Read + Send>,
    mut sender: Sender,
    queue: SyncSender<Block>,
    sent: &AtomicU64,
) -> Result<u64, SendError> {
    let mut total = 0u64;
    loop {
        let block = match read_block(&mut source) {
            Ok(block) => block,
            Err(e) => {
                // Stop both directions: the reader must not wait for an echo of
                // bytes we will never send.
                sender.abort();
                return Err(SendError::Source(e));
            }
        };
        if block.bytes.is_empty() {
            break; // end of the payload
        }
        // Queue first, then send: see the module documentation for why this order
        // cannot deadlock. The queue only fails if the reader has given up.
        queue.send(Arc::clone(&block)).map_err(|_| SendError::ReaderGone)?;
        sender.send(&block.bytes).map_err(SendError::Socket)?;
        total += block.bytes.len() as u64;
        sent.store(total, Ordering::SeqCst);
    }
    // FIN: "no more data from us". The server's recv() returns b'' and it closes,
    // which is how our reader learns that the echo is complete. With TLS a
    // close_notify says it first, inside the encrypted stream.
    let how = if sender.is_tls() { "sending close_notify and " } else { "" };
    info!("sent {}; {how}shutting down our side for writing (FIN)", plural(total, "byte"));
    sender.half_close().map_err(SendError::Socket)?;
    Ok(total)
}

/// Read up to [`BLOCK_SIZE`] bytes of the payload; an empty block means its end.
fn read_block(source: &mut dyn Read) -> io::Result<Block> {
    let mut buf = vec![0u8; BLOCK_SIZE];
    // Bounded: each pass either returns or was interrupted by a signal.
    loop {
        match source.read(&mut buf) {
            // Ok(0) is the end of the file or standard input: an empty block says so.
            Ok(n) => {
                buf.truncate(n);
                return Ok(Sent::new(buf));
            }
            // A signal arrived before any byte was read: nothing happened, read again.
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Join the writer if it has finished; otherwise stop it (it may be blocked on a
/// socket write or on standard input) and leave it behind.
fn finish_writer(
    writer: JoinHandle<Result<u64, SendError>>,
    checker: &Checker,
    stream: &TcpStream,
) -> Option<Result<u64, SendError>> {
    if checker.writer_finished() || writer.is_finished() {
        // The queue is disconnected only when the writer returns, so this join is immediate.
        return writer.join().ok();
    }
    // Shutting the socket makes a blocked write fail at once; a writer blocked on
    // standard input ends with the process.
    let _ = stream.shutdown(Shutdown::Both);
    None
}

/// Where each piece of the echo goes: checked, logged, written out.
struct Echo<'a> {
    /// Bytes asked of each read().
    chunk: usize,
    /// `--timeout`: the longest wait for bytes the server owes.
    timeout: Duration,
    checker: &'a mut Checker,
    progress: &'a mut Progress,
    output: &'a mut Output,
    /// When every byte sent had come back and the writer had finished.
    complete: Option<Instant>,
}

/// Read the whole echo, then end its partial line on the terminal, which the
/// log lines that follow must not continue. Also returns when it ended: at the
/// server's close, or when the echo was complete if the server never closed.
fn receive(link: &mut Receiver, mut echo: Echo) -> (ReadEnd, Instant) {
    let read_end = read_echo(link, &mut echo);
    let ended = match (&read_end, echo.complete) {
        (ReadEnd::NotClosed, Some(complete)) => complete,
        _ => Instant::now(),
    };
    match echo.output.end_line() {
        Err(e) if !matches!(read_end, ReadEnd::OutputFailed(_)) => {
            (ReadEnd::OutputFailed(e), ended)
        }
        _ => (read_end, ended),
    }
}

/// Read the echo in pieces of `chunk` bytes until EOF, an error, or too much data.
fn read_echo(link: &mut Receiver, echo: &mut Echo) -> ReadEnd {
    let mut buf = vec![0u8; echo.chunk];
    // What SO_RCVTIMEO is set to now.
    let mut wait = echo.timeout;
    // Bounded: every pass reads at least one byte, or ends, or waits at most the
    // timeout for a writer that is itself waiting for more input.
    loop {
        let due = echo.checker.due();
        if due == Due::Close && echo.complete.is_none() {
            echo.complete = Some(Instant::now());
        }
        // How long the server may stay quiet now (see CLOSE_WAIT and WRITER_POLL).
        let quiet = match due {
            Due::Echo => echo.timeout,
            Due::Input => WRITER_POLL.min(echo.timeout),
            Due::Close => CLOSE_WAIT.min(echo.timeout),
        };
        if quiet != wait {
            if let Err(e) = link.set_read_timeout(quiet) {
                return ReadEnd::Failed(e);
            }
            wait = quiet;
        }
        match link.read(&mut buf) {
            // 0 bytes: the server closed its side after our FIN (or early).
            Ok(0) => return ReadEnd::Closed,
            Ok(n) => {
                let received = echo.checker.received() + n as u64;
                echo.progress.piece(&buf[..n], received);
                echo.checker.compare(&buf[..n]);
                if let Err(e) = echo.output.write(&buf[..n]) {
                    return ReadEnd::OutputFailed(e);
                }
                if echo.checker.is_longer() {
                    return ReadEnd::Longer;
                }
            }
            // A signal interrupted the wait before data came: nothing was read, read again.
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // The read timeout (SO_RCVTIMEO) expired; Unix reports it as WouldBlock
            // (EAGAIN). A writer still waiting for its source (someone typing on
            // standard input) means the server owes us nothing yet: keep waiting.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                match due {
                    Due::Echo => return ReadEnd::TimedOut,
                    Due::Input => {}
                    Due::Close => return ReadEnd::NotClosed,
                }
            }
            Err(e) if is_peer_gone(&e) => return ReadEnd::PeerGone(e),
            Err(e) => return ReadEnd::Failed(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A source that gives some bytes, then fails like a disk error.
    struct Failing(bool);

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if std::mem::replace(&mut self.0, true) {
                return Err(io::Error::other("disk on fire"));
            }
            buf[..3].copy_from_slice(b"abc");
            Ok(3)
        }
    }

    #[test]
    fn source_error_stops_the_writer_and_closes_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (tx, rx) = mpsc::sync_channel(QUEUE_BLOCKS);
        let sent = AtomicU64::new(0);
        let (sender, _receiver) = Link { socket: client, tls: None }.split(16).unwrap();
        let result = send_all(Box::new(Failing(false)), sender, tx, &sent);
        assert!(matches!(result, Err(SendError::Source(_))), "{result:?}");
        assert_eq!(rx.recv().unwrap().bytes, b"abc");
        let mut got = Vec::new();
        server.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"abc", "the peer sees what was sent, then the end");
    }
}
