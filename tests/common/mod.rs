//! What every integration test shares: start the real `progjar` binary, wait for
//! its `listening on` line (never sleep), and run commands with a time bound.
#![allow(dead_code)] // each test file uses a different part of this module

mod process;
pub use process::{run_bounded, wait_child};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single step of a test may take before the test fails.
pub const STEP: Duration = Duration::from_secs(30);

/// The `progjar` binary cargo built for these tests.
pub fn progjar() -> Command {
    Command::new(env!("CARGO_BIN_EXE_progjar"))
}

/// A running `progjar server`, killed when dropped.
pub struct Server {
    pub child: Child,
    /// Where it listens (the real port, read from its first stdout line).
    pub addr: SocketAddr,
    /// Every stderr (log) line so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

/// `progjar server --bind 127.0.0.1 --port 0 EXTRA...`, not started yet.
fn server_command(extra: &[&str]) -> Command {
    let mut cmd = progjar();
    cmd.args(["server", "--bind", "127.0.0.1", "--port", "0"]).args(extra);
    cmd
}

/// Start `progjar server --bind 127.0.0.1 --port 0 EXTRA...` and wait for it to listen.
pub fn start_server(extra: &[&str]) -> Server {
    start_server_with(&mut server_command(extra))
}

/// [`start_server`] with `RUST_LOG=level` (`debug`, `trace`).
pub fn start_server_logging(level: &str, extra: &[&str]) -> Server {
    start_server_with(server_command(extra).env("RUST_LOG", level))
}

/// Start a server from a prepared command (its stdout and stderr are piped here).
pub fn start_server_with(cmd: &mut Command) -> Server {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn progjar server");
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = Arc::clone(&log);
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        // Keep draining so the server never blocks on a full stdout pipe.
        for _ in lines {}
    });
    let first = match rx.recv_timeout(STEP) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            panic!("server did not print 'listening on' in time; log: {:?}", log.lock().unwrap());
        }
    };
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .parse()
        .expect("address in 'listening on' line");
    Server { child, addr, log }
}

impl Server {
    /// The port as a string, for command lines.
    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// A copy of the log lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// How many log lines so far contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    /// Wait until at least `n` log lines contain `needle` (bounded by [`STEP`]).
    pub fn wait_for_log_count(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + STEP;
        while self.log_count(needle) < n {
            assert!(Instant::now() < deadline, "fewer than {n} log lines with {needle:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait until some log line contains `needle` (bounded by [`STEP`]).
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(line) = self.log_lines().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}: {:?}",
                self.log_lines()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send a signal to the server (e.g. `libc::SIGTERM` = 15).
    pub fn signal(&self, sig: i32) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Wait for the server to exit (bounded by [`STEP`]).
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_child(&mut self.child, STEP).expect("server did not exit in time")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run a command to completion with stdin from `input`, bounded by [`STEP`].
pub fn run(cmd: &mut Command, input: Option<Vec<u8>>) -> Output {
    run_bounded(cmd, input, STEP)
}

/// Deterministic pseudo-random bytes (xorshift), so a failing test can be rerun.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A blocking client with read and write timeouts, so no test can hang on it.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, STEP).expect("connect");
    s.set_read_timeout(Some(STEP)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    s
}

/// Read exactly `n` bytes.
pub fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    s.read_exact(&mut v).expect("read echo");
    v
}

/// Send `data` from another thread, then half-close; read everything back
/// until EOF on this one. Returns what came back.
pub fn echo_all(mut s: TcpStream, data: Vec<u8>) -> Vec<u8> {
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    s.read_to_end(&mut back).expect("read to EOF");
    writer.join().unwrap();
    back
}

/// SO_LINGER 0: close() sends RST instead of FIN.
pub fn set_linger_zero(s: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: plain setsockopt on a socket we own, with a correctly sized struct.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER): {}", std::io::Error::last_os_error());
}
