//! The server's loop never waits on its own stderr, takes every signal it is
//! sent, echoes urgent bytes in place, and names what its trace shows
//! (issue 8 §1, §4, §5, §6 for the server; issue 9 §5).

use progjar_testkit as common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStderr, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    connect, echo_all, listening_addr, random_bytes, read_n, server_command, start_server,
    wait_child, STEP,
};

/// Connect/close cycles that write far more log than a pipe holds (64 KiB):
/// each writes two lines of about 100 bytes.
const CHURN: usize = 3000;

/// How long a probe's echo may take after the churn. Blocked on its stderr,
/// the server never answers at all; free, it answers in milliseconds. The
/// bound is loose so that a busy machine cannot fail the test.
const PROBE_BOUND: Duration = Duration::from_secs(5);

/// A server whose stderr is a pipe that this test holds open and never reads.
struct Stuck {
    child: Child,
    addr: SocketAddr,
    /// The pipe's read end: kept (so writes fill it, then block), or dropped
    /// (so writes fail with EPIPE).
    stderr: Option<ChildStderr>,
}

impl Stuck {
    fn start(level: &str, extra: &[&str]) -> Stuck {
        let mut child = server_command(extra)
            .env("RUST_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn progjar server");
        let stderr = child.stderr.take();
        let addr = listening_addr(&mut child).expect("the server prints 'listening on'");
        Stuck { child, addr, stderr }
    }

    fn kill(&self, signal: i32) {
        deliver(self.child.id(), signal);
    }

    /// With a client still open, a second SIGTERM ends the server at once, exit
    /// status 130 (the first alone would wait `--grace` for the client).
    fn assert_second_sigterm_exits_130(mut self) {
        let _open = connect(self.addr);
        self.kill(libc::SIGTERM);
        self.kill(libc::SIGTERM);
        let status = wait_child(&mut self.child, STEP);
        assert_eq!(status.and_then(|s| s.code()), Some(130));
    }
}

/// Send `signal` and wait until the kernel has delivered it (its bit leaves
/// `ShdPnd` in /proc/PID/status). Two of the same standard signal sent
/// before the first is delivered are merged by the kernel into one, so this
/// is how "two signals back to back" can really be two.
fn deliver(pid: u32, signal: i32) {
    common::send_signal(pid, signal);
    let bit = 1u64 << (signal - 1);
    let deadline = Instant::now() + STEP;
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let pending = status
            .lines()
            .find_map(|l| l.strip_prefix("ShdPnd:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok());
        match pending {
            Some(mask) if mask & bit != 0 => {}
            _ => return, // delivered (or the process is gone)
        }
        assert!(Instant::now() < deadline, "signal {signal} not delivered");
        thread::yield_now();
    }
}

impl Drop for Stuck {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Open and close `n` connections, each with a bounded connect, so that a
/// server that stopped accepting fails the test instead of hanging it.
fn churn(addr: SocketAddr, n: usize) {
    for i in 0..n {
        let s = TcpStream::connect_timeout(&addr, PROBE_BOUND);
        assert!(s.is_ok(), "connection {i} of {n}: {s:?} (is the server stuck?)");
    }
}

/// Fill the server's stderr whatever its connection lines are: at debug level
/// with `--read-size 32` ([`FLOOD_ARGS`]) each 32 bytes echoed log two lines of
/// over 100 bytes, so this 1 MiB writes megabytes, far more than a pipe and
/// the log queue hold.
fn flood(addr: SocketAddr) {
    let data = random_bytes(1 << 20, 1);
    assert!(echo_all(connect(addr), data.clone()) == data, "the flood is echoed whole");
}

/// Server options under which [`flood`] writes megabytes of log.
const FLOOD_ARGS: [&str; 2] = ["--read-size", "32"];

/// The time a fresh client's 5-byte echo takes, which must arrive within
/// [`PROBE_BOUND`].
fn probe(addr: SocketAddr) -> Duration {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, PROBE_BOUND).expect("probe connects");
    s.set_read_timeout(Some(PROBE_BOUND)).unwrap();
    s.write_all(b"probe").unwrap();
    let mut back = [0u8; 5];
    s.read_exact(&mut back).expect("probe echo within the bound (is the server stuck?)");
    assert_eq!(&back, b"probe");
    start.elapsed()
}

#[test]
fn a_log_nobody_reads_never_stops_the_loop() {
    let mut server = Stuck::start("info", &["--grace", "5"]);
    churn(server.addr, CHURN);
    let latency = probe(server.addr);
    eprintln!("probe echo {latency:?} after {CHURN} connections with stderr stuck");
    let start = Instant::now();
    server.kill(libc::SIGTERM);
    let status = wait_child(&mut server.child, Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "SIGTERM ends it within --grace");
    eprintln!("exit {:?} after SIGTERM", start.elapsed());
}

#[test]
fn dropped_log_lines_are_counted_once_stderr_flows() {
    let mut server = Stuck::start("debug", &FLOOD_ARGS);
    flood(server.addr);
    probe(server.addr);
    // Now read: the writer finishes what it was writing, then says how many
    // lines it had to drop meanwhile.
    let stderr = server.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str, deadline: Instant| {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        line.unwrap_or_else(|_| panic!("no {what} in the log"))
    };
    let deadline = Instant::now() + STEP;
    let dropped = loop {
        let line = next("'log lines dropped' line", deadline);
        if line.contains("dropped: stderr was not keeping up") {
            break line;
        }
    };
    assert!(dropped.starts_with("WARN:logging:"), "{dropped}");
    let n = dropped["WARN:logging:".len()..].split(' ').next().unwrap().replace(',', "");
    let n: u64 = n.parse().unwrap();
    assert!(n > 0, "{dropped}");
    // Lines flow again: a new client's lines arrive (once the writer has
    // caught up with what was queued), then the shutdown and the summary.
    let deadline = Instant::now() + STEP;
    'flowing: loop {
        let client = connect(server.addr);
        let closing = format!("closing connection from {}", client.local_addr().unwrap());
        drop(client);
        let soon = (Instant::now() + Duration::from_secs(2)).min(deadline);
        while let Ok(line) = rx.recv_timeout(soon.saturating_duration_since(Instant::now())) {
            if line.contains(&closing) {
                break 'flowing;
            }
        }
        assert!(Instant::now() < deadline, "the log never flowed again");
    }
    server.kill(libc::SIGTERM);
    while !next("summary line", deadline).starts_with("INFO:server:served ") {}
    let status = wait_child(&mut server.child, STEP);
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}

#[test]
fn a_closed_stderr_neither_stops_nor_kills_the_server() {
    let mut server = Stuck::start("debug", &["--grace", "600", FLOOD_ARGS[0], FLOOD_ARGS[1]]);
    drop(server.stderr.take()); // every write to stderr now fails with EPIPE
    flood(server.addr);
    probe(server.addr);
    // The exit line (status 130) goes to the closed stderr too.
    server.assert_second_sigterm_exits_130();
}

#[test]
fn a_stuck_stderr_does_not_hold_up_the_exit() {
    let server = Stuck::start("debug", &["--grace", "600", FLOOD_ARGS[0], FLOOD_ARGS[1]]);
    flood(server.addr);
    server.assert_second_sigterm_exits_130();
}

/// Two SIGTERMs count as two even when both arrive before the loop looks at
/// its signal pipe (a loop that reads one flag per signal would see one). To
/// make "before the loop looks" certain even for a loop that waits on its
/// log, stderr is stuck until both are delivered (such a loop sits blocked in
/// a log write, with the connections past the first ~400 in the backlog).
#[test]
fn two_sigterms_back_to_back_stop_at_once() {
    let mut server = Stuck::start("info", &["--grace", "600"]);
    churn(server.addr, 1000);
    let _open = connect(server.addr);
    server.kill(libc::SIGTERM);
    server.kill(libc::SIGTERM);
    // Let the log flow (a loop that waited on it goes on and reads its signals).
    let mut stderr = server.stderr.take().expect("stderr");
    thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let status = wait_child(&mut server.child, STEP);
    assert_eq!(status.and_then(|s| s.code()), Some(130));
}

/// SIGHUP (the terminal that started the server closed) is a graceful stop:
/// a client mid-transfer gets every byte back.
#[test]
fn sighup_lets_a_transfer_finish() {
    const HALF: usize = 1 << 20;
    let mut server = start_server(&["--grace", "600"]);
    let data = random_bytes(2 * HALF, 8);
    let mut s = connect(server.addr);
    s.write_all(&data[..HALF]).unwrap();
    assert!(read_n(&mut s, HALF) == data[..HALF], "first half echoed");
    server.signal(libc::SIGHUP);
    server.wait_for_log("SIGHUP: shutting down");
    let back = echo_all(s, data[HALF..].to_vec());
    assert!(back == data[HALF..], "second half echoed after SIGHUP");
    assert_eq!(server.wait_exit().code(), Some(0));
    server.wait_for_log(&format!("echoed {} bytes", progjar::units::grouped(2 * HALF as u64)));
}

/// A byte sent as TCP urgent data (MSG_OOB) is echoed in its place.
#[test]
fn urgent_data_is_echoed_in_place() {
    let server = start_server(&[]);
    let mut s = connect(server.addr);
    // An echo first, so the server has surely accepted (and set up) the socket.
    s.write_all(b"abc").unwrap();
    assert_eq!(read_n(&mut s, 3), b"abc");
    // SAFETY: a one-byte send from a live buffer on our own socket.
    let sent = unsafe { libc::send(s.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
    assert_eq!(sent, 1, "send MSG_OOB: {}", std::io::Error::last_os_error());
    s.write_all(b"xyz").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(String::from_utf8_lossy(&back), "!xyz");
}

/// The recipe for watching the loop think (docs/server.md, `tools/slow-reader`):
/// its trace shows readiness events under the tokens' names, a
/// write that would block, WRITABLE asked for, reads stopped at
/// `--max-pending` and resumed, and WRITABLE dropped again.
#[test]
fn the_trace_recipe_shows_the_loop_think() {
    let server = common::start_server_logging(
        "progjar=trace",
        &["--read-size", "16KiB", "--max-pending", "64KiB"],
    );
    // The recipe's own slow reader, as docs/server.md runs it.
    let reader = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/slow-reader");
    let out = common::run(std::process::Command::new(reader).arg(server.port()), None);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "16777216 bytes back", "{out:?}");
    server.wait_for_log("(peer closed): 16,777,216 bytes echoed");
    let log = server.log_lines();
    let at = |from: usize, needle: &str| {
        let found = log[from..].iter().position(|l| l.contains(needle));
        from + found.unwrap_or_else(|| panic!("no {needle:?} after line {from} of the trace"))
    };
    at(0, "TRACE:server:event listener: readable");
    let first = at(0, "TRACE:server:event conn 0 (127.0.0.1:");
    assert!(log[first].ends_with("): readable"), "{}", log[first]);
    let blocked = at(first, ": WouldBlock with ");
    assert!(log[blocked].starts_with("TRACE:server:write to 127.0.0.1:"), "{}", log[blocked]);
    // Owing 64 KiB: reads stop, and only WRITABLE is asked for.
    let stopped = at(blocked, "interest now WRITABLE");
    let writable = at(stopped, "TRACE:server:event conn 0 (");
    assert!(log[writable].ends_with("): writable"), "{}", log[writable]);
    // The flush made room: reads resume, and WRITABLE is dropped again.
    let read = at(writable, "TRACE:server:read from 127.0.0.1:");
    let dropped = log[read..].iter().any(|l| l.ends_with("interest now READABLE"));
    assert!(dropped, "WRITABLE dropped after the flush");
    assert!(!log.iter().any(|l| l.contains("Token(")), "every token is named");
}

#[test]
fn the_help_says_sighup_is_graceful() {
    let out = common::run(common::progjar().args(["server", "--help"]), None);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("SIGHUP (the terminal closed) stop accepting"), "{help}");
}
