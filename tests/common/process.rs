//! Running a child process to completion with a time bound, collecting its
//! output. Shared by the progjar tests (`tests/common/mod.rs`) and the stress
//! tool's (`tools/stress/tests`, through `#[path]`), which cannot share a crate.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

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
