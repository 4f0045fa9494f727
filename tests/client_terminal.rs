//! `progjar client` at a terminal: interactive mode under a real
//! pseudo-terminal (tmux), where the terminal, not a pipe, delivers each line
//! and Ctrl-D; and Ctrl-C (SIGINT) in the middle of a transfer.
//!
//! Every wait polls for the awaited screen or log line with a deadline
//! (`common::STEP`); tmux runs on its own socket, in a directory of its own,
//! and is killed (and the directory removed) when dropped.

use progjar_testkit as common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{progjar, start_server, wait_child, STEP};

/// A detached tmux session running one command on a pseudo-terminal, on a
/// tmux server of its own whose socket lives in a directory of its own: the
/// server is killed and the directory removed when dropped (a failed test
/// too), so no test leaves a socket behind.
struct Tmux {
    dir: PathBuf,
}

impl Tmux {
    /// Start `command` in a session of a tmux server of our own, named by `name`.
    fn start(name: &str, command: &str) -> Tmux {
        // Under /tmp, not the target directory: a socket's path must stay short (108 bytes).
        let dir = std::env::temp_dir().join(format!("progjar-tmux-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("a directory for the tmux socket");
        let tmux = Tmux { dir };
        let size = ["-x", "200", "-y", "50"];
        let ok = tmux
            .cmd()
            .args(["new-session", "-d"])
            .args(size)
            .arg(command)
            .status()
            .expect("tmux is needed for this test: `make deps` installs it");
        assert!(ok.success(), "tmux new-session failed");
        tmux
    }

    /// `tmux` on our own server socket, without the user's configuration.
    fn cmd(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(self.dir.join("socket")).args(["-f", "/dev/null"]);
        cmd
    }

    fn keys(&self, keys: &[&str]) {
        let ok = self.cmd().arg("send-keys").args(keys).status().expect("tmux send-keys");
        assert!(ok.success());
    }

    fn screen(&self) -> String {
        let out = self.cmd().args(["capture-pane", "-p"]).output().expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until the screen satisfies `ready`; return it.
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "no {what} on the screen:\n{screen}");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn count_lines(screen: &str, line: &str) -> usize {
    screen.lines().filter(|l| l.trim_end() == line).count()
}

#[test]
fn interactive_mode_echoes_each_typed_line_and_ctrl_d_ends_with_the_summary() {
    let server = start_server(&[]);
    let bin = env!("CARGO_BIN_EXE_progjar");
    // `sleep` keeps the pane (and the exit status printed on it) until we look.
    let tmux = Tmux::start(
        "ctrl-d",
        &format!("'{bin}' client -i 127.0.0.1:{}; echo EXIT=$?; sleep 60", server.port()),
    );
    let dir = tmux.dir.clone();
    tmux.wait_for("interactive prompt", |s| s.contains("Ctrl-D ends"));
    // Each line comes back before the next is typed: once as the terminal
    // echoes the typing, once marked, as the server's echo.
    tmux.keys(&["halo dunia", "Enter"]);
    tmux.wait_for("echo of the first line", |s| count_lines(s, "echo: halo dunia") == 1);
    tmux.keys(&["baris kedua", "Enter"]);
    tmux.wait_for("echo of the second line", |s| count_lines(s, "echo: baris kedua") == 1);
    // A partial line (Ctrl-D sends it without a newline), then the end.
    tmux.keys(&["tanpa", "C-d"]);
    tmux.wait_for("echo of the partial line", |s| count_lines(s, "echo: tanpa") == 1);
    tmux.keys(&["C-d"]);
    let screen = tmux.wait_for("exit status", |s| s.contains("EXIT="));
    assert!(screen.contains("\nEXIT=0\n"), "{screen}");
    for typed in ["halo dunia", "baris kedua", "tanpa"] {
        assert_eq!(count_lines(&screen, typed), 1, "{typed:?} typed once:\n{screen}");
        assert_eq!(count_lines(&screen, &format!("echo: {typed}")), 1, "{screen}");
    }
    assert!(
        screen.contains("\nINFO:client:sent 28 bytes; shutting down our side for writing (FIN)")
    );
    // The summary starts a line of its own, and its speed is the lines' round trip.
    let summary = screen.lines().find(|l| l.starts_with("sent ")).unwrap_or_default();
    assert!(summary.starts_with("sent 28 bytes, received 28 bytes, identical, "), "{screen}");
    assert!(summary.contains(" s, slowest echo "), "{screen}");
    drop(tmux);
    assert!(!dir.exists(), "the tmux socket's directory is removed");
}

/// Ctrl-C at the terminal while the client waits for the next line: the writer
/// is blocked reading the terminal, which no signal of ours can wake.
#[test]
fn interactive_ctrl_c_prints_the_summary_and_exits_130() {
    let server = start_server(&[]);
    let bin = env!("CARGO_BIN_EXE_progjar");
    let tmux = Tmux::start(
        "ctrl-c",
        // --timeout 60: the summary must not wait a timeout for the blocked writer.
        &format!(
            "'{bin}' client -i --timeout 60 127.0.0.1:{}; echo EXIT=$?; sleep 60",
            server.port()
        ),
    );
    tmux.wait_for("interactive prompt", |s| s.contains("Ctrl-D ends"));
    tmux.keys(&["halo", "Enter"]);
    tmux.wait_for("echo of the line", |s| count_lines(s, "echo: halo") == 1);
    tmux.keys(&["C-c"]);
    let screen = tmux.wait_for("exit status", |s| s.contains("EXIT="));
    assert!(screen.contains("\nEXIT=130\n"), "{screen}");
    let summary = screen.lines().find(|l| l.starts_with("sent ")).unwrap_or_default();
    assert!(summary.starts_with("sent 5 bytes, received 5 bytes, interrupted at offset 5, "));
    assert!(screen.contains("progjar: error: interrupted (Ctrl-C): received 5 of 5 bytes sent"));
}

/// A client stopped by `signal` in the middle of a transfer: what it said.
struct Stopped {
    status: std::process::ExitStatus,
    summary: String,
    log: Vec<String>,
}

/// Run `progjar client ARGS` in `dir`; once it has begun sending `--size 64MB`
/// (so the signal is watched) and `ready` holds, send it `signal`.
fn stop_mid_transfer(dir: &Path, args: &[&str], ready: impl Fn() -> bool, signal: i32) -> Stopped {
    let mut child = progjar()
        .current_dir(dir)
        .arg("client")
        .args(args)
        .args(["--size", "64MB", "--timeout", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn progjar client");
    let (lines, log) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    let reader = thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    // "sending" is logged once the exchange has begun (and Ctrl-C is watched).
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) if line.starts_with("INFO:client:sending 67,108,864 bytes") => break,
            Ok(_) => continue,
            Err(e) => panic!("the client never started sending: {e}"),
        }
    }
    common::wait_until("the client to be ready for the signal", ready);
    common::send_signal(child.id(), signal);
    let status = wait_child(&mut child, STEP).expect("the client stops after the signal");
    let mut summary = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut summary).unwrap();
    let _ = reader.join();
    Stopped { status, summary, log: log.try_iter().collect() }
}

/// A one-connection server that echoes the first `n` bytes, then reads and
/// echoes nothing more (the transfer stalls for good) until the test is done.
fn stalling_server(n: usize) -> (SocketAddr, mpsc::Sender<()>, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let (done, hold) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut first = vec![0u8; n];
        conn.read_exact(&mut first).expect("read the first bytes");
        conn.write_all(&first).expect("echo the first bytes");
        let _ = hold.recv_timeout(STEP);
    });
    (addr, done, server)
}

/// Ctrl-C while the server takes nothing: the writer is blocked in `write`, the
/// reader in `read`; both must wake, and the summary so far must be printed.
#[test]
fn ctrl_c_prints_the_summary_so_far_and_exits_130() {
    let (addr, done, server) = stalling_server(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let stopped = stop_mid_transfer(dir, &[&addr.to_string()], || true, libc::SIGINT);
    let _ = done.send(());
    let _ = server.join();
    let Stopped { status, summary, log } = stopped;
    assert_eq!(status.code(), Some(130), "{log:?}");
    assert!(summary.starts_with("sent "), "{summary}");
    assert!(summary.contains(" bytes, received 0 bytes, interrupted at offset 0, "), "{summary}");
    let error = log.last().cloned().unwrap_or_default();
    assert!(error.starts_with("progjar: error: interrupted (Ctrl-C): received 0 of "), "{log:?}");
}

/// Ctrl-C (or SIGTERM) with `--output`: the file keeps its old content, what
/// came back is kept as FILE.partial, and no temporary file is left.
#[test]
fn a_stopped_transfer_keeps_what_came_as_partial() {
    for (signal, name) in [(libc::SIGINT, "Ctrl-C"), (libc::SIGTERM, "SIGTERM")] {
        let (addr, done, server) = stalling_server(1000);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("terminal-{}-partial-{signal}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("out.bin"), b"the previous echo").unwrap();
        // Ready once the 1000 echoed bytes are in a file of the directory.
        let echoed = || {
            let sizes = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len());
            sizes.into_iter().any(|len| len == 1000)
        };
        let args = [addr.to_string(), "--output".into(), "out.bin".into()];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stopped = stop_mid_transfer(&dir, &args, echoed, signal);
        let _ = done.send(());
        let _ = server.join();
        let Stopped { status, summary, log } = stopped;
        assert_eq!(status.code(), Some(130), "{name}: {log:?}");
        assert!(summary.contains(" bytes, received 1,000 bytes, interrupted at offset 1,000, "));
        assert!(
            summary.ends_with("; out.bin was not written: what came back is in out.bin.partial\n"),
            "{name}: {summary}"
        );
        let error = log.last().cloned().unwrap_or_default();
        assert!(error.starts_with(&format!("progjar: error: interrupted ({name}): ")), "{log:?}");
        assert_eq!(fs::read(dir.join("out.bin")).unwrap(), b"the previous echo", "{name}");
        let mut first = Vec::new();
        progjar::client::generated(1000).read_to_end(&mut first).unwrap();
        assert!(fs::read(dir.join("out.bin.partial")).unwrap() == first, "{name}");
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["out.bin", "out.bin.partial"], "{name}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
