//! The blocking echo client: `progjar client`.
//!
//! It does what the course's `client.py` does — connect, send a message or a
//! file, read the echo in 16-byte pieces, close — and then checks that the echo
//! came back whole, byte for byte, and says so in one summary line on stdout.
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
//! echo against the queued blocks, so memory stays bounded for any payload size,
//! and a message, a file and standard input all take the same path.
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
//! # Exit codes
//!
//! The table is in [`crate::cli`]: 0 complete and identical, 1 other failure,
//! 2 usage, 3 refused, 4 unresolved, 5 timed out, 6 echo short or different,
//! 7 file unreadable.

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::cli::{
    Failure, EXIT_ECHO, EXIT_FAILURE, EXIT_FILE, EXIT_REFUSED, EXIT_TIMEOUT, EXIT_UNRESOLVED,
};
use crate::info;
use crate::preview::preview;
use crate::sock::is_peer_gone;

/// The course client's message: 46 bytes.
pub const DEFAULT_MESSAGE: &str = "INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ";

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

/// Largest payload whose echo is logged piece by piece: 4 KiB is 256 lines at
/// the default 16-byte chunk, still readable; beyond that, one progress line per
/// [`PROGRESS_EVERY`] (every piece stays visible with `RUST_LOG=debug`).
pub const PIECE_LOG_LIMIT: u64 = 4 * 1024;

/// How often progress is logged for payloads larger than [`PIECE_LOG_LIMIT`]:
/// once a second shows that things move without flooding the terminal.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What a student should try when the connection is refused.
pub const REFUSED_HINT: &str = "is the server running on that port? From another machine, use the \
     server's address (e.g. 172.16.16.101), not localhost";

/// What to send.
#[derive(Debug, Clone)]
pub enum Payload {
    /// A text message.
    Message(String),
    /// A file's content; `-` is standard input.
    File(PathBuf),
}

/// The client's settings, from `progjar client`'s command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Host name or address of the server.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// What to send.
    pub payload: Payload,
    /// Bytes asked of each read of the echo.
    pub chunk: usize,
    /// Connect and read timeout.
    pub timeout: Duration,
}

/// Send the payload, read the echo, verify it, print the summary line.
pub fn run(config: Config) -> Result<(), Failure> {
    // Open the payload first: a missing file is reported without touching the network.
    let source = Source::open(&config.payload)?;
    let addrs = resolve(&config.host, config.port, config.timeout)?;
    let stream = connect(&addrs, config.timeout)?;
    let outcome = exchange(stream, source, &config)?;
    print_summary(&outcome.summary());
    outcome.verdict()
}

// ---------------------------------------------------------------------------
// The payload

/// Where the payload's bytes come from.
enum Source {
    Message(String),
    File { path: PathBuf, file: File, len: Option<u64> },
    Stdin,
}

impl Source {
    fn open(payload: &Payload) -> Result<Source, Failure> {
        match payload {
            Payload::Message(text) => Ok(Source::Message(text.clone())),
            Payload::File(path) if path.as_os_str() == "-" => Ok(Source::Stdin),
            Payload::File(path) => open_file(path),
        }
    }

    /// The payload's size, when it is known before sending (not for standard input or pipes).
    fn len(&self) -> Option<u64> {
        match self {
            Source::Message(text) => Some(text.len() as u64),
            Source::File { len, .. } => *len,
            Source::Stdin => None,
        }
    }

    /// Name the source in error messages.
    fn name(&self) -> String {
        match self {
            Source::Message(_) => "the message".to_string(),
            Source::File { path, .. } => path.display().to_string(),
            Source::Stdin => "standard input".to_string(),
        }
    }

    /// Log what is sent, in the course's words.
    fn announce(&self) {
        match self {
            Source::Message(text) if text.len() as u64 <= PIECE_LOG_LIMIT => {
                info!("sending {text}")
            }
            Source::Message(text) => info!("sending a message ({} bytes)", text.len()),
            Source::File { len: Some(n), .. } => info!("sending file content ({n} bytes)"),
            Source::File { path, len: None, .. } => {
                info!("sending file content ({})", path.display())
            }
            Source::Stdin => info!("sending standard input"),
        }
    }

    fn into_reader(self) -> Box<dyn Read + Send> {
        match self {
            Source::Message(text) => Box::new(io::Cursor::new(text.into_bytes())),
            Source::File { file, .. } => Box::new(file),
            Source::Stdin => Box::new(io::stdin()),
        }
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

// ---------------------------------------------------------------------------
// Resolving and connecting

/// Every address `host` resolves to (a literal resolves to itself), bounded by `limit`.
fn resolve(host: &str, port: u16, limit: Duration) -> Result<Vec<SocketAddr>, Failure> {
    // `[::1]` is how URLs write IPv6 literals; getaddrinfo wants `::1`.
    let name = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let found = info::lookup(name, port, libc::SOCK_STREAM, 0, limit).map_err(|reason| {
        Failure::new(EXIT_UNRESOLVED, format!("cannot resolve {host}: {reason}"))
    })?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in found.into_iter().map(|ai| ai.addr) {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    debug!("{host} resolves to {addrs:?}");
    Ok(addrs)
}

/// Try each address in turn, each with `timeout`; the first that answers wins.
fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, Failure> {
    let mut errors: Vec<(SocketAddr, io::Error)> = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        info!("connecting to {addr}");
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                if i + 1 < addrs.len() {
                    warn!("cannot connect to {addr}: {e}; trying the next address");
                }
                errors.push((*addr, e));
            }
        }
    }
    Err(connect_failure(&errors, timeout))
}

/// One line for the failed attempts. A refusal says most (something answered: no
/// server on that port), then a timeout, then whatever came last.
fn connect_failure(errors: &[(SocketAddr, io::Error)], timeout: Duration) -> Failure {
    let find = |kind: ErrorKind| errors.iter().find(|(_, e)| e.kind() == kind);
    if let Some((addr, _)) = find(ErrorKind::ConnectionRefused) {
        return Failure::new(EXIT_REFUSED, format!("connection refused by {addr}: {REFUSED_HINT}"));
    }
    if let Some((addr, _)) = find(ErrorKind::TimedOut) {
        return Failure::new(
            EXIT_TIMEOUT,
            format!("timed out connecting to {addr} after {}", secs(timeout)),
        );
    }
    match errors.last() {
        Some((addr, e)) => Failure::new(EXIT_FAILURE, format!("cannot connect to {addr}: {e}")),
        None => Failure::new(EXIT_UNRESOLVED, "the host resolves to no address"),
    }
}

// ---------------------------------------------------------------------------
// The exchange: a writer thread sends, the main thread reads and compares

/// A block of the payload, shared by the writer (which sends it) and the reader
/// (which compares the echo with it).
type Block = Arc<Vec<u8>>;

/// Why the writer stopped early.
#[derive(Debug)]
enum WriteError {
    /// Reading the file or standard input failed.
    Source(io::Error),
    /// Writing to the socket (or half-closing it) failed.
    Socket(io::Error),
    /// The reader gave up and dropped the queue; nothing more is worth sending.
    ReaderGone,
}

/// How the reading of the echo ended.
#[derive(Debug)]
enum Ending {
    /// The server closed its side (read returned 0).
    Eof,
    /// No data for `timeout` while the server still owed us some.
    TimedOut,
    /// The server reset the connection.
    Reset(io::Error),
    /// Another read error.
    Failed(io::Error),
    /// The server sent more than we sent.
    Longer,
}

/// The first byte of the echo that is not what we sent.
#[derive(Debug, Clone, Copy)]
struct Difference {
    offset: u64,
    /// What we sent at `offset`; `None` if we sent nothing there (extra byte).
    sent: Option<u8>,
    received: u8,
}

/// Everything the summary line and the exit code are made from.
#[derive(Debug)]
struct Outcome {
    sent: u64,
    received: u64,
    /// Sent bytes whose echo never came.
    missing: u64,
    difference: Option<Difference>,
    ending: Ending,
    /// The writer's result, or `None` if it had not finished when we stopped.
    writer: Option<Result<u64, WriteError>>,
    source_name: String,
    elapsed: Duration,
    timeout: Duration,
}

/// Send `source` on `stream` from a writer thread while reading and checking the echo here.
fn exchange(stream: TcpStream, source: Source, config: &Config) -> Result<Outcome, Failure> {
    let setup = |e: io::Error| Failure::new(EXIT_FAILURE, format!("cannot set up the socket: {e}"));
    // One timeout per read() of the echo, and per write() of a block.
    stream.set_read_timeout(Some(config.timeout)).map_err(setup)?;
    stream.set_write_timeout(Some(config.timeout)).map_err(setup)?;
    let writer_socket = stream.try_clone().map_err(setup)?;

    let source_name = source.name();
    let total = source.len();
    source.announce();
    let start = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let (queue, blocks) = mpsc::sync_channel::<Block>(QUEUE_BLOCKS);
    let writer = spawn_writer(source.into_reader(), writer_socket, queue, Arc::clone(&sent))?;

    let mut checker = Checker::new(blocks, config.timeout);
    let mut progress = Progress::new(total);
    let ending = read_echo(&stream, config.chunk, &mut checker, &mut progress);
    let missing = if matches!(ending, Ending::Eof) { checker.missing() } else { 0 };
    info!("closing");
    let writer = finish_writer(writer, &checker, &stream);
    Ok(Outcome {
        sent: sent.load(Ordering::SeqCst),
        received: checker.received,
        missing,
        difference: checker.difference,
        ending,
        writer,
        source_name,
        elapsed: start.elapsed(),
        timeout: config.timeout,
    })
}

fn spawn_writer(
    source: Box<dyn Read + Send>,
    socket: TcpStream,
    queue: SyncSender<Block>,
    sent: Arc<AtomicU64>,
) -> Result<JoinHandle<Result<u64, WriteError>>, Failure> {
    thread::Builder::new()
        .name("writer".into())
        .spawn(move || send_all(source, socket, queue, &sent))
        .map_err(|e| Failure::new(EXIT_FAILURE, format!("cannot start the writer thread: {e}")))
}

/// The writer thread: stream the source in blocks, queue each, send it, then half-close.
///
/// Returns the bytes sent. On a failure to read the source it shuts the whole
/// connection down, which wakes the reader's blocked `read` with EOF.
fn send_all(
    mut source: Box<dyn Read + Send>,
    mut socket: TcpStream,
    queue: SyncSender<Block>,
    sent: &AtomicU64,
) -> Result<u64, WriteError> {
    let mut total = 0u64;
    loop {
        let block = match read_block(&mut source) {
            Ok(block) => block,
            Err(e) => {
                // Stop both directions: the reader must not wait for an echo of
                // bytes we will never send.
                let _ = socket.shutdown(Shutdown::Both);
                return Err(WriteError::Source(e));
            }
        };
        if block.is_empty() {
            break; // end of the payload
        }
        // Queue first, then send: see the module documentation for why this order
        // cannot deadlock. The queue only fails if the reader has given up.
        queue.send(Arc::clone(&block)).map_err(|_| WriteError::ReaderGone)?;
        socket.write_all(&block).map_err(WriteError::Socket)?;
        total += block.len() as u64;
        sent.store(total, Ordering::SeqCst);
    }
    // FIN: "no more data from us". The server's recv() returns b'' and it closes,
    // which is how our reader learns that the echo is complete.
    info!("sent {total} bytes; shutting down our side for writing (FIN)");
    socket.shutdown(Shutdown::Write).map_err(WriteError::Socket)?;
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
                return Ok(Arc::new(buf));
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
    writer: JoinHandle<Result<u64, WriteError>>,
    checker: &Checker,
    stream: &TcpStream,
) -> Option<Result<u64, WriteError>> {
    if checker.writer_finished || writer.is_finished() {
        // The queue is disconnected only when the writer returns, so this join is immediate.
        return writer.join().ok();
    }
    // Shutting the socket makes a blocked write fail at once; a writer blocked on
    // standard input ends with the process.
    let _ = stream.shutdown(Shutdown::Both);
    None
}

/// Read the echo in pieces of `chunk` bytes until EOF, an error, or too much data.
fn read_echo(
    mut stream: &TcpStream,
    chunk: usize,
    checker: &mut Checker,
    progress: &mut Progress,
) -> Ending {
    let mut buf = vec![0u8; chunk];
    // Bounded: every pass reads at least one byte, or ends, or waits at most the
    // timeout for a writer that is itself waiting for more input.
    loop {
        match stream.read(&mut buf) {
            // 0 bytes: the server closed its side after our FIN (or early).
            Ok(0) => return Ending::Eof,
            Ok(n) => {
                progress.piece(&buf[..n], checker.received + n as u64);
                if checker.check(&buf[..n]).is_err() {
                    return Ending::Longer;
                }
            }
            // A signal interrupted the wait before data came: nothing was read, read again.
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // The read timeout (SO_RCVTIMEO) expired; Unix reports it as WouldBlock
            // (EAGAIN). If everything we sent has been echoed and the writer is
            // still waiting for input (someone typing on standard input), the
            // server owes us nothing: keep waiting. Otherwise the server is late.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if !checker.owes_nothing() {
                    return Ending::TimedOut;
                }
                debug!("all echoed so far; waiting for more input");
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) =>
            {
                return Ending::Reset(e)
            }
            Err(e) => return Ending::Failed(e),
        }
    }
}

/// Compares the echo with the blocks the writer queued.
struct Checker {
    blocks: Receiver<Block>,
    /// The block the echo is in, and how far it has been matched.
    block: Block,
    pos: usize,
    received: u64,
    difference: Option<Difference>,
    /// The writer has returned (the queue is disconnected): no more blocks will come.
    writer_finished: bool,
    /// Longest wait for a block (only reached with a misbehaving peer or a stalled source).
    wait: Duration,
}

/// The echo has bytes beyond anything the writer queued.
struct Beyond;

impl Checker {
    fn new(blocks: Receiver<Block>, wait: Duration) -> Checker {
        Checker {
            blocks,
            block: Arc::new(Vec::new()),
            pos: 0,
            received: 0,
            difference: None,
            writer_finished: false,
            wait,
        }
    }

    /// Compare one piece of the echo with what was sent.
    fn check(&mut self, mut piece: &[u8]) -> Result<(), Beyond> {
        // Bounded: every pass consumes at least one byte of `piece`.
        while !piece.is_empty() {
            if self.pos == self.block.len() {
                if let Err(beyond) = self.next_block() {
                    self.note_difference(0, None, piece[0]);
                    return Err(beyond);
                }
                continue;
            }
            let expected = &self.block[self.pos..];
            let n = expected.len().min(piece.len());
            if let Some(i) = (0..n).find(|&i| expected[i] != piece[i]) {
                self.note_difference(i, Some(expected[i]), piece[i]);
            }
            self.pos += n;
            self.received += n as u64;
            piece = &piece[n..];
        }
        Ok(())
    }

    fn note_difference(&mut self, at: usize, sent: Option<u8>, received: u8) {
        if self.difference.is_none() {
            self.difference =
                Some(Difference { offset: self.received + at as u64, sent, received });
        }
    }

    /// Move to the next queued block. It is normally there already: the writer
    /// queues a block before sending it, so its echo cannot arrive first.
    fn next_block(&mut self) -> Result<(), Beyond> {
        match self.blocks.recv_timeout(self.wait) {
            Ok(block) => {
                self.block = block;
                self.pos = 0;
                Ok(())
            }
            // The writer is done: the server sent more than we did.
            Err(RecvTimeoutError::Disconnected) => {
                self.writer_finished = true;
                Err(Beyond)
            }
            // The server sent bytes we have not sent (yet), and our source has
            // produced nothing for a whole timeout: treat them as extra bytes.
            Err(RecvTimeoutError::Timeout) => Err(Beyond),
        }
    }

    /// True if every byte sent so far has been echoed and the writer is still at
    /// work (waiting for its source), so a quiet server is not late.
    fn owes_nothing(&mut self) -> bool {
        if self.pos < self.block.len() {
            return false;
        }
        match self.blocks.try_recv() {
            // A new block: its echo is due now.
            Ok(block) => {
                self.block = block;
                self.pos = 0;
                false
            }
            // Nothing queued: the writer has not sent anything we have not seen echoed.
            Err(TryRecvError::Empty) => true,
            // The writer is done and all was echoed: the server should have closed.
            Err(TryRecvError::Disconnected) => {
                self.writer_finished = true;
                false
            }
        }
    }

    /// After EOF: how many sent bytes never came back. Waits (at most one timeout)
    /// for the writer to finish, since the server may close right after our FIN,
    /// before the writer thread has returned.
    fn missing(&mut self) -> u64 {
        let mut missing = (self.block.len() - self.pos) as u64;
        let deadline = Instant::now() + self.wait;
        // Bounded by the deadline.
        while !self.writer_finished {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.blocks.recv_timeout(left) {
                Ok(block) => missing += block.len() as u64,
                Err(RecvTimeoutError::Disconnected) => self.writer_finished = true,
                // The writer is still busy (e.g. reading standard input) although the
                // server has closed: the echo is short whatever comes next.
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        missing
    }
}

/// Logs each piece of a small echo, or progress for a large one.
struct Progress {
    /// The payload's size, if known.
    total: Option<u64>,
    /// Log every piece (small payloads) rather than progress.
    pieces: bool,
    next_report: Instant,
}

impl Progress {
    fn new(total: Option<u64>) -> Progress {
        Progress {
            total,
            pieces: total.map_or(true, |t| t <= PIECE_LOG_LIMIT),
            next_report: Instant::now() + PROGRESS_EVERY,
        }
    }

    /// Log one piece; `received` counts it.
    fn piece(&mut self, piece: &[u8], received: u64) {
        if self.pieces && received > PIECE_LOG_LIMIT {
            // Only standard input of unknown size gets here.
            self.pieces = false;
            info!(
                "more than {PIECE_LOG_LIMIT} bytes: logging progress every {} instead",
                secs(PROGRESS_EVERY)
            );
        }
        if self.pieces {
            info!("{}", preview(piece));
            return;
        }
        debug!("{}", preview(piece));
        let now = Instant::now();
        if now >= self.next_report {
            self.next_report = now + PROGRESS_EVERY;
            match self.total {
                Some(t) => {
                    info!("received {received} of {t} bytes ({}%)", received * 100 / t.max(1))
                }
                None => info!("received {received} bytes"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The verdict

impl Outcome {
    /// The echo is complete and identical.
    fn identical(&self) -> bool {
        matches!(self.ending, Ending::Eof)
            && matches!(self.writer, Some(Ok(_)))
            && self.difference.is_none()
            && self.missing == 0
            && self.received == self.sent
    }

    /// One line: sent, received, identical or where it differs, time, throughput.
    fn summary(&self) -> String {
        let status = if self.identical() {
            "identical".to_string()
        } else if matches!(self.ending, Ending::TimedOut) {
            format!("timed out at offset {}", self.received)
        } else if let Some(d) = self.difference {
            match d.sent {
                Some(_) => format!("different from offset {}", d.offset),
                None => format!("longer: extra bytes from offset {}", d.offset),
            }
        } else {
            format!("short: echo ends at offset {}", self.received)
        };
        let secs = self.elapsed.as_secs_f64();
        format!(
            "sent {} bytes, received {} bytes, {status}, {:.3} s, {}",
            self.sent,
            self.received,
            secs,
            rate(self.received, secs)
        )
    }

    /// `Ok` if identical, otherwise the failure with its exit code, the most
    /// specific reason first.
    fn verdict(self) -> Result<(), Failure> {
        if self.identical() {
            return Ok(());
        }
        if let Some(Err(WriteError::Source(e))) = &self.writer {
            return Err(Failure::new(EXIT_FILE, format!("cannot read {}: {e}", self.source_name)));
        }
        match &self.ending {
            Ending::TimedOut => return Err(Failure::new(EXIT_TIMEOUT, self.timeout_message())),
            Ending::Failed(e) => {
                return Err(Failure::new(EXIT_FAILURE, format!("reading the echo failed: {e}")))
            }
            Ending::Eof | Ending::Reset(_) | Ending::Longer => {}
        }
        if let Some(d) = self.difference {
            return Err(Failure::new(EXIT_ECHO, difference_message(d)));
        }
        if let Some(Err(WriteError::Socket(e))) = &self.writer {
            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                let msg = format!(
                    "timed out sending: the server took nothing for {}",
                    secs(self.timeout)
                );
                return Err(Failure::new(EXIT_TIMEOUT, msg));
            }
            if !is_peer_gone(e) {
                return Err(Failure::new(EXIT_FAILURE, format!("sending failed: {e}")));
            }
        }
        // What is left: the echo so far was right, but it stopped early.
        Err(Failure::new(EXIT_ECHO, self.short_message()))
    }

    fn timeout_message(&self) -> String {
        format!(
            "timed out: no echo for {} (received {} of {} bytes sent)",
            secs(self.timeout),
            self.received,
            self.sent
        )
    }

    fn short_message(&self) -> String {
        let how = match &self.ending {
            Ending::Reset(e) => format!("the connection was reset ({e})"),
            _ => "the server closed the connection".to_string(),
        };
        format!(
            "echo short: {how} after {} of {} bytes sent; the first missing byte is at offset {}",
            self.received, self.sent, self.received
        )
    }
}

fn difference_message(d: Difference) -> String {
    match d.sent {
        Some(sent) => format!(
            "echo differs at offset {}: sent {}, received {}",
            d.offset,
            preview(&[sent]),
            preview(&[d.received])
        ),
        None => format!("echo longer than what was sent: extra bytes from offset {}", d.offset),
    }
}

/// Print the summary on stdout, where scripts read it.
fn print_summary(line: &str) {
    // If stdout is closed (`| head -0`) there is nobody to tell; the exit code still says it all.
    let _ = writeln!(io::stdout().lock(), "{line}");
}

/// A duration in seconds, the way the command line takes it: `10 s`, `2.5 s`.
fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// Bytes per second, in KiB/s or MiB/s.
fn rate(bytes: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "- B/s".to_string();
    }
    let per_sec = bytes as f64 / secs;
    if per_sec >= 1024.0 * 1024.0 {
        format!("{:.1} MiB/s", per_sec / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB/s", per_sec / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn checker_with(blocks: &[&[u8]]) -> Checker {
        let (tx, rx) = mpsc::sync_channel(blocks.len());
        for b in blocks {
            tx.send(Arc::new(b.to_vec())).unwrap();
        }
        drop(tx); // the writer is done
        Checker::new(rx, Duration::from_secs(1))
    }

    #[test]
    fn echo_split_across_blocks_matches() {
        let mut c = checker_with(&[b"INI ADA", b"LAH DATA"]);
        assert!(c.check(b"INI ADALAH").is_ok());
        assert!(c.check(b" DATA").is_ok());
        assert!(c.difference.is_none());
        assert_eq!((c.received, c.missing()), (15, 0));
    }

    #[test]
    fn first_difference_is_kept() {
        let mut c = checker_with(&[b"abcdef"]);
        assert!(c.check(b"abXdeY").is_ok());
        let d = c.difference.unwrap();
        assert_eq!((d.offset, d.sent, d.received), (2, Some(b'c'), b'X'));
    }

    #[test]
    fn extra_bytes_are_beyond() {
        let mut c = checker_with(&[b"abc"]);
        assert!(c.check(b"abcd").is_err());
        let d = c.difference.unwrap();
        assert_eq!((d.offset, d.sent, d.received), (3, None, b'd'));
    }

    #[test]
    fn short_echo_counts_missing_bytes() {
        let mut c = checker_with(&[b"abc", b"def"]);
        assert!(c.check(b"ab").is_ok());
        assert_eq!(c.missing(), 4);
    }

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
        let result = send_all(Box::new(Failing(false)), client, tx, &sent);
        assert!(matches!(result, Err(WriteError::Source(_))), "{result:?}");
        assert_eq!(rx.recv().unwrap().as_slice(), b"abc");
        let mut got = Vec::new();
        server.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"abc", "the peer sees what was sent, then the end");
    }

    #[test]
    fn rates_and_durations() {
        assert_eq!(rate(3 << 20, 1.0), "3.0 MiB/s");
        assert_eq!(rate(512, 1.0), "0.5 KiB/s");
        assert_eq!(secs(Duration::from_millis(2500)), "2.5 s");
    }
}
