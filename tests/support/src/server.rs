//! A running `progjar server`: started on 127.0.0.1 port 0, ready once it has
//! printed `listening on ADDR`, its stderr captured line by line so a test can
//! wait for the log line that says an event happened.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::process::{progjar, wait_child, STEP};
use crate::procfs::open_connections;

/// A running `progjar server`, killed when dropped.
pub struct Server {
    /// The server process.
    pub child: Child,
    /// Where it listens (the real port, read from its first stdout line).
    pub addr: SocketAddr,
    /// Every stderr (log) line so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

/// `progjar server --bind 127.0.0.1 --port 0 EXTRA...`, not started yet.
pub fn server_command(extra: &[&str]) -> Command {
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
    let Some(addr) = listening_addr(&mut child) else {
        panic!("server did not print 'listening on' in time; log: {:?}", log.lock().unwrap());
    };
    Server { child, addr, log }
}

/// `progjar proxy --bind 127.0.0.1 --port 0 --to TO EXTRA...`, not started yet.
pub fn proxy_command(to: SocketAddr, extra: &[&str]) -> Command {
    let mut cmd = progjar();
    cmd.args(["proxy", "--bind", "127.0.0.1", "--port", "0", "--to", &to.to_string()]).args(extra);
    cmd
}

/// Start `progjar proxy` on 127.0.0.1, a free port, relaying to `to`, and wait
/// for it to listen. It is a [`Server`] like any other: its log, its address,
/// its stop (its lines read `INFO:proxy:...`).
pub fn start_proxy(to: SocketAddr, extra: &[&str]) -> Server {
    start_server_with(&mut proxy_command(to, extra))
}

/// The course's insecure proxy (`tools/lab/course_proxy.py`) on 127.0.0.1, a
/// free port, relaying to `target`: recv(32) each way, each piece logged in the
/// course's words, and a half-close never passed on (the server behind it never
/// sees the client's FIN). It prints its address first, like the server.
pub fn start_course_proxy(target: SocketAddr) -> Server {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tools/lab/course_proxy.py");
    let (host, port) = (target.ip().to_string(), target.port().to_string());
    start_server_with(Command::new("python3").args([script, "0", &host, &port, "127.0.0.1"]))
}

/// Where a just-started server listens: its first stdout line, `listening on
/// ADDR`. Its stdout (piped) is drained from then on, so that it never blocks on
/// a full pipe. `None`, the server killed, if the line does not come within [`STEP`].
pub fn listening_addr(child: &mut Child) -> Option<SocketAddr> {
    let stdout: ChildStdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        for _ in lines {}
    });
    let Ok(first) = rx.recv_timeout(STEP) else {
        let _ = child.kill();
        return None;
    };
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .parse()
        .expect("address in 'listening on' line");
    Some(addr)
}

/// The real progjar echo server, in a thread of this process, on a free
/// loopback port; it serves until the test process exits. For tests of a
/// client (the stress tool), where the server's log does not matter.
pub fn serve_in_thread() -> SocketAddr {
    let config = progjar::server::Config {
        bind: Ipv4Addr::LOCALHOST.into(),
        port: 0,
        ..progjar::server::Config::default()
    };
    let running = progjar::server::spawn(config).expect("start the progjar server");
    let addr = running.addr;
    // Serves until the test process exits: the handle is never used to stop it.
    std::mem::forget(running);
    addr
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
    /// With `n` = (the count before an action) + 1 it waits for the line the
    /// action causes, never for an earlier one.
    pub fn wait_for_log_count(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + STEP;
        while self.log_count(needle) < n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} log lines with {needle:?}: {:?}",
                self.log_lines()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait until some log line contains `needle` (bounded by [`STEP`]) and
    /// return the first such line. Any earlier line with `needle` matches too:
    /// make `needle` name the event (a peer's port, a reason), or use
    /// [`Server::wait_for_log_count`] or [`Server::wait_for_close`].
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.wait_for_line(&format!("a log line with {needle:?}"), |l| l.contains(needle))
    }

    /// Wait for the line that says the server closed the connection from
    /// client port `port` (whatever the reason) and return it: the one event,
    /// not the `connection from` line of the same client nor another's close.
    pub fn wait_for_close(&self, port: u16) -> String {
        let peer = format!(":{port} (");
        self.wait_for_line(&format!("the close of client port {port}"), |l| {
            l.contains("closing connection from ") && l.contains(&peer)
        })
    }

    /// The first log line for which `wanted` holds, waiting up to [`STEP`].
    fn wait_for_line(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| wanted(l)) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "no {what}: {:?}", self.log_lines());
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait until the server holds exactly `n` client connections (bounded by
    /// [`STEP`]). Counted in /proc, not from `(N open)` log lines, which a
    /// busy server may summarise.
    pub fn wait_for_open(&self, n: usize) {
        let (pid, port) = (self.child.id(), self.addr.port());
        let deadline = Instant::now() + STEP;
        loop {
            let open = open_connections(pid, port);
            if open == n {
                return;
            }
            assert!(Instant::now() < deadline, "{open} connections open, not {n}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send a signal to the server (e.g. `libc::SIGTERM` = 15).
    pub fn signal(&self, sig: i32) {
        crate::process::send_signal(self.child.id(), sig);
    }

    /// Wait for the server to exit (bounded by [`STEP`]).
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_child(&mut self.child, STEP).expect("server did not exit in time")
    }

    /// Stop the server (or `progjar proxy`) with SIGTERM (every client already
    /// gone): it must exit 0 without a panic. Returns its summary line.
    pub fn stop(mut self) -> String {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit();
        assert!(status.success(), "{status:?}: {:?}", self.log_lines());
        let summary = self.wait_for_line("the summary line", |l| {
            ["INFO:server:served ", "INFO:proxy:served "].iter().any(|s| l.starts_with(s))
        });
        assert_no_panic(&self.log_lines());
        summary
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// No line of a log says the process panicked.
pub fn assert_no_panic(lines: &[String]) {
    assert!(
        !lines.iter().any(|l| l.contains("panicked") || l.contains("stack backtrace")),
        "{lines:#?}"
    );
}
