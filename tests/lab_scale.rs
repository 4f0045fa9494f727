//! HAProxy in the lab (`tools/lab/scale`): two progjar servers behind HAProxy,
//! restarted one after the other under load without losing a connection, and one
//! killed with SIGKILL, which loses exactly the connections it held; and load
//! from two machines at once against one server, merged into one report.
//!
//! Like tests/lab.rs these need root and `ip netns`, and also haproxy (`make deps`
//! installs it) and the progjar-stress binary next to progjar's (`cargo test
//! --workspace` builds it). Anywhere else they print why and pass without doing
//! anything. Each test builds its own lab (`LAB_TAG`) and takes it down whatever
//! happens; every lab packet comes from a process started with `ip netns exec`.

use progjar_testkit as common;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::wait_child;

/// The longest one scenario may take (it usually takes 10 to 15 s).
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/lab/scale")
}

/// progjar-stress from the same build as the progjar under test.
fn stress_binary() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_progjar")).with_file_name("progjar-stress")
}

/// Why the scaled lab cannot be built here, if it cannot.
fn cannot_run() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    for (tool, arg) in [("ip", "-V"), ("unshare", "--version"), ("ss", "-V"), ("python3", "-V")] {
        if !works(tool, arg) {
            return Some(format!("no working `{tool}` (make deps installs it)"));
        }
    }
    if !works("haproxy", "-v") {
        return Some(
            "haproxy is not installed (make deps installs it: apt-get install haproxy)".into(),
        );
    }
    if !stress_binary().exists() {
        return Some(format!(
            "no {} (cargo build --workspace, or cargo test --workspace, builds it)",
            stress_binary().display()
        ));
    }
    // Root in a container may still be refused namespaces: try one.
    let probe = format!("pjscaleprobe{}", std::process::id());
    let made = Command::new("ip").args(["netns", "add", &probe]).stderr(Stdio::null()).status();
    let _ = Command::new("ip").args(["netns", "del", &probe]).stderr(Stdio::null()).status();
    if !made.is_ok_and(|s| s.success()) {
        return Some("`ip netns add` is not allowed here".into());
    }
    None
}

fn works(tool: &str, arg: &str) -> bool {
    let status = Command::new(tool).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status();
    status.is_ok_and(|s| s.success())
}

macro_rules! skip_unless_lab {
    () => {
        if let Some(why) = cannot_run() {
            eprintln!("skipping the HAProxy lab test: {why}");
            return;
        }
    };
}

/// One lab of this test: its tag and output directory; dropping it takes the lab
/// down (mesin4 and HAProxy included) and removes the directory.
struct Lab {
    tag: String,
    dir: PathBuf,
}

impl Lab {
    fn new(suffix: char) -> Lab {
        // 6 characters at most: the bridge's veths are pjlab-<tag>-mN (15 max).
        let tag = format!("s{}{suffix}", std::process::id() % 10_000);
        let dir = std::env::temp_dir().join(format!("progjar-lab-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        Lab { tag, dir }
    }

    /// `SCRIPT ARGS` for this lab, its output into `LOG.out` in the lab's directory.
    fn command(&self, script: &Path, args: &[&str], log: &str) -> Command {
        let out = File::create(self.dir.join(format!("{log}.out"))).expect("log file");
        let mut cmd = Command::new("bash");
        cmd.arg(script)
            .args(args)
            .env("PROGJAR", env!("CARGO_BIN_EXE_progjar"))
            .env("PROGJAR_STRESS", stress_binary())
            .env("LAB_TAG", &self.tag)
            .env("LAB_DIR", &self.dir)
            .stdin(Stdio::null())
            .stderr(out.try_clone().expect("log file"))
            .stdout(out);
        cmd
    }

    /// Run `tools/lab/scale SCENARIO` to the end, bounded (SIGTERM first, so that
    /// the script's trap takes its lab down). Returns its exit code and output.
    fn run(&self, scenario: &str) -> (Option<i32>, String) {
        let mut child = self.command(&script(), &[scenario], scenario).spawn().expect("spawn");
        let deadline = Instant::now() + RUN_LIMIT;
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                // SAFETY: kill(2) on our own child's pid.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
                let _ = wait_child(&mut child, Duration::from_secs(60));
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = fs::read_to_string(self.dir.join(format!("{scenario}.out"))).unwrap_or_default();
        match status {
            Some(status) => (status.code(), out),
            None => panic!("`scale {scenario}` took longer than {RUN_LIMIT:?}; output:\n{out}"),
        }
    }

    /// What is left of this lab (empty when it is gone).
    fn leftovers(&self) -> Vec<String> {
        let netns = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
        let mut left: Vec<String> = String::from_utf8_lossy(&netns.stdout)
            .lines()
            .filter(|line| line.starts_with(&format!("pj{}-", self.tag)))
            .map(|line| format!("namespace {line}"))
            .collect();
        let state = Path::new("/run/progjar-lab").join(&self.tag);
        if state.exists() {
            left.push(state.display().to_string());
        }
        left
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/lab/lab");
        if let Ok(mut child) = self.command(&lab, &["down"], "guard-down").spawn() {
            let _ = wait_child(&mut child, Duration::from_secs(60));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The numbers of the script's load line `N run(s): connections A ok, B failed, C unfinished; ...`.
fn load_line(out: &str, nth: usize) -> (u64, u64, u64) {
    let line = out
        .lines()
        .filter(|l| l.contains(" run(s): connections "))
        .nth(nth)
        .unwrap_or_else(|| panic!("no load line #{nth} in the output:\n{out}"));
    let number = |word: &str| -> u64 {
        let before = line.split(word).next().unwrap_or_default();
        before.split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or_else(|| {
            panic!("no number before {word:?} in {line:?}");
        })
    };
    (number(" ok,"), number(" failed,"), number(" unfinished;"))
}

/// Run a rolling restart scenario and check that its load lost nothing.
fn rolling(suffix: char, scenario: &str) {
    let lab = Lab::new(suffix);
    let (code, out) = lab.run(scenario);
    assert_eq!(code, Some(0), "scale {scenario} failed:\n{out}");
    let (ok, failed, unfinished) = load_line(&out, 0);
    assert!(ok >= 100, "too little load went through the restart ({ok} connections):\n{out}");
    assert_eq!((failed, unfinished), (0, 0), "connections lost in the rolling restart:\n{out}");
    for n in [2, 3] {
        assert!(
            out.contains(&format!("ok: mesin{n} restarted and serving again")),
            "mesin{n} was not restarted under load:\n{out}"
        );
    }
    let left = lab.leftovers();
    assert!(left.is_empty(), "left behind after scale {scenario}: {left:?}\n{out}");
}

/// SIGTERM alone: the connects a stopping server refuses are retried by HAProxy
/// on the other server (`retries`, `option redispatch 1`).
#[test]
fn rolling_restart_on_sigterm_behind_haproxy_loses_no_connection() {
    skip_unless_lab!();
    rolling('r', "rolling");
}

/// The production recipe: drain the server in HAProxy first, then SIGTERM.
#[test]
fn rolling_restart_with_drain_loses_no_connection() {
    skip_unless_lab!();
    rolling('d', "drain");
}

#[test]
fn sigkill_loses_exactly_the_connections_on_the_killed_server() {
    skip_unless_lab!();
    let lab = Lab::new('k');
    let (code, out) = lab.run("kill");
    assert_eq!(code, Some(0), "scale kill failed:\n{out}");
    // The new connections (first line), then the 20 long ones, about half of them
    // on mesin3 (the script checks they were exactly the ones that failed).
    assert_eq!(load_line(&out, 0), (10, 0, 0), "new connections after the kill:\n{out}");
    let (ok, failed, unfinished) = load_line(&out, 1);
    assert_eq!(ok + failed + unfinished, 20, "long connections:\n{out}");
    assert!(failed > 0 && ok > 0, "long connections: {ok} ok, {failed} failed:\n{out}");
    assert!(out.contains("ok: SIGKILL: the "), "{out}");
    let left = lab.leftovers();
    assert!(left.is_empty(), "left behind after scale kill: {left:?}\n{out}");
}

/// Load from two machines at once (mesin2 and mesin3) against one server on
/// mesin1, merged: the merged report counts every connection the server served.
#[test]
fn load_from_two_machines_merges_into_one_report() {
    skip_unless_lab!();
    let lab = Lab::new('m');
    let (code, out) = lab.run("merge");
    assert_eq!(code, Some(0), "scale merge failed:\n{out}");
    assert!(out.contains("merged:      2 runs"), "{out}");
    assert!(out.contains("ok: two load machines, one report: "), "{out}");
    let left = lab.leftovers();
    assert!(left.is_empty(), "left behind after scale merge: {left:?}\n{out}");
}
