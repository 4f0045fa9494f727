//! The binaries under test, and running a command to completion with a time
//! bound, collecting its output.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single step of a test may take before the test fails.
pub const STEP: Duration = Duration::from_secs(30);

/// The `progjar` binary cargo built for these tests.
///
/// `env!("CARGO_BIN_EXE_progjar")` exists only while cargo compiles progjar's own
/// integration tests, not this library, so the path is found at run time: cargo
/// puts test executables in `target/<profile>/deps/` and binaries one level up.
/// `PROGJAR_BIN` overrides it (a binary built elsewhere).
pub fn progjar_path() -> PathBuf {
    if let Some(path) = std::env::var_os("PROGJAR_BIN") {
        return path.into();
    }
    let path = built("progjar");
    assert!(path.is_file(), "{} not built: run the tests through cargo", path.display());
    path
}

/// A command running the `progjar` binary.
pub fn progjar() -> Command {
    Command::new(progjar_path())
}

/// The `progjar-stress` binary of the same build. Cargo builds it for the
/// stress tool's own tests and for `--workspace`, not for progjar's alone, so
/// it may be missing: a test that may run without it checks `exists()`.
pub fn progjar_stress_path() -> PathBuf {
    built("progjar-stress")
}

/// A command running the `progjar-stress` binary.
pub fn progjar_stress() -> Command {
    Command::new(progjar_stress_path())
}

/// Longest any one `progjar-stress` run may take before the test fails.
pub const STRESS_LIMIT: Duration = Duration::from_secs(60);

/// Run `progjar-stress ARGS` to completion (killed after [`STRESS_LIMIT`]);
/// returns its output and how long it ran.
pub fn stress(args: &[&str]) -> (Output, Duration) {
    stress_with(progjar_stress().args(args))
}

/// Run a prepared command to completion (killed after [`STRESS_LIMIT`]).
pub fn stress_with(cmd: &mut Command) -> (Output, Duration) {
    let started = Instant::now();
    let output = run_bounded(cmd, None, STRESS_LIMIT);
    (output, started.elapsed())
}

/// Where cargo puts binary `name` of this build (next to `deps/`).
fn built(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/");
    dir.join(name)
}

/// Run `progjar client ARGS...` with `stdin` as standard input, bounded by [`STEP`].
pub fn client(args: &[&str], stdin: Option<Vec<u8>>) -> Output {
    run(progjar().arg("client").args(args), stdin)
}

/// What a command wrote to stdout, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a command wrote to stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Both output streams, for assertions and failure messages.
pub fn all_output(out: &Output) -> String {
    format!("--- stdout\n{}--- stderr\n{}", stdout(out), stderr(out))
}

/// A command's exit code; the test fails if a signal killed it.
pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

/// Wait for a child at most `limit`; `None` (after killing it) if it ran too long.
pub fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Run `cmd` with stdin from `input` and collect its output; the test fails if
/// it runs longer than `limit`.
pub fn run_bounded(cmd: &mut Command, input: Option<Vec<u8>>, limit: Duration) -> Output {
    let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let Some(data) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let Some(status) = wait_child(&mut child, limit) else {
        panic!("{args:?} ran longer than {limit:?}");
    };
    Output { status, stdout: out_t.join().unwrap(), stderr: err_t.join().unwrap() }
}

/// Run a command to completion with stdin from `input`, bounded by [`STEP`].
pub fn run(cmd: &mut Command, input: Option<Vec<u8>>) -> Output {
    run_bounded(cmd, input, STEP)
}

/// Poll `cond` every 10 ms until it holds, failing after [`STEP`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Run `progjar ARGS` (optionally through a wrapper like setpriv) with
/// backtraces on; return (status, stderr). It must not start serving.
pub fn run_failing(wrapper: &[&str], args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(progjar_path());
            c
        }
        None => progjar(),
    };
    cmd.args(args).env("RUST_BACKTRACE", "1");
    let out = run(&mut cmd, None);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.stdout.is_empty(), "{args:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{args:?}: {err}");
    (out.status.code(), err)
}

/// Send signal `sig` (e.g. `libc::SIGTERM`) to process `pid`, a child of this test.
pub fn send_signal(pid: u32, sig: i32) {
    let signal = nix::sys::signal::Signal::try_from(sig).expect("a signal number");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid"));
    nix::sys::signal::kill(pid, signal).expect("kill");
}
