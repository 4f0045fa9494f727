//! One lab in network namespaces for a test (`tools/lab/lab`, `tools/lab/scale`):
//! whether this machine can build one, a tag and directory of its own, the
//! scripts run with a time bound, what is left of it afterwards, and a guard that
//! takes it down whatever happens.
//!
//! A lab needs root and `ip netns`; where it cannot be built a test prints why
//! and passes without doing anything ([`skip_unless_lab!`](crate::skip_unless_lab)).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::process::{progjar_path, progjar_stress_path, wait_child};

/// Return from the test (passing, after saying why) when `$why`, an
/// `Option<String>` such as [`cannot_run`]'s, names a reason the lab cannot run;
/// without an argument, the test file's own `cannot_run()` says.
#[macro_export]
macro_rules! skip_unless_lab {
    () => {
        $crate::skip_unless_lab!(cannot_run())
    };
    ($why:expr) => {
        if let Some(why) = $why {
            eprintln!("skipping the lab test: {why}");
            return;
        }
    };
}

/// A script of `tools/lab/` (`lab`, `scale`).
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/lab").join(name)
}

/// Whether `TOOL ARG` runs and succeeds (`ip -V`, `haproxy -v`).
pub fn works(tool: &str, arg: &str) -> bool {
    let status = Command::new(tool).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status();
    status.is_ok_and(|s| s.success())
}

/// Why a lab cannot be built here, if it cannot: not root, one of `tools`
/// (`(name, version flag)`) missing, or namespaces refused.
pub fn cannot_run(tools: &[(&str, &str)]) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    if let Some((tool, _)) = tools.iter().find(|(tool, arg)| !works(tool, arg)) {
        return Some(format!("no working `{tool}` (make deps installs it)"));
    }
    // Root in a container may still be refused namespaces: try one.
    static PROBES: AtomicUsize = AtomicUsize::new(0);
    let probe = format!("pjprobe{}-{}", std::process::id(), PROBES.fetch_add(1, Ordering::Relaxed));
    let made = Command::new("ip").args(["netns", "add", &probe]).stderr(Stdio::null()).status();
    let _ = Command::new("ip").args(["netns", "del", &probe]).stderr(Stdio::null()).status();
    if !made.is_ok_and(|s| s.success()) {
        return Some("`ip netns add` is not allowed here".into());
    }
    None
}

/// One lab of a test: its script, its tag (`LAB_TAG`: namespaces
/// `pj<tag>-mesinN`, bridge `pjlab-<tag>`) and its output directory. Dropping it
/// takes the lab down and removes the directory, whether the test passed or failed.
pub struct Lab {
    /// The script [`Lab::run`] runs (`tools/lab/lab`, `tools/lab/scale`).
    pub script: PathBuf,
    /// `LAB_TAG`, unique to this test process and test.
    pub tag: String,
    /// `LAB_DIR`: the scripts' output files, and each run's `LOG.out`.
    pub dir: PathBuf,
}

impl Lab {
    /// A lab run by `tools/lab/SCRIPT`, tagged `PREFIX PID SUFFIX`: two test files
    /// use two prefixes, one test process its pid, each test its own suffix, so
    /// no two labs collide.
    pub fn new(script_name: &str, prefix: &str, suffix: char) -> Lab {
        // 6 characters at most: the bridge's veths are pjlab-<tag>-mN (15 max).
        let digits = 5 - prefix.len() as u32;
        let tag = format!("{prefix}{}{suffix}", std::process::id() % 10u32.pow(digits));
        let dir = std::env::temp_dir().join(format!("progjar-lab-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        Lab { script: script(script_name), tag, dir }
    }

    /// The name of machine `n`'s namespace.
    pub fn ns(&self, n: u32) -> String {
        format!("pj{}-mesin{n}", self.tag)
    }

    /// The name of the lab's bridge.
    pub fn bridge(&self) -> String {
        format!("pjlab-{}", self.tag)
    }

    /// `SCRIPT ARGS` for this lab, stdout and stderr into `LOG.out` in its directory.
    pub fn command(&self, script: &Path, args: &[&str], log: &str) -> Command {
        let out = File::create(self.dir.join(format!("{log}.out"))).expect("log file");
        let mut cmd = Command::new("bash");
        cmd.arg(script)
            .args(args)
            .env("PROGJAR", progjar_path())
            .env("PROGJAR_STRESS", progjar_stress_path())
            .env("LAB_TAG", &self.tag)
            .env("LAB_DIR", &self.dir)
            .env_remove("LAB_TEST_FAIL_AT")
            .stdin(Stdio::null())
            .stderr(out.try_clone().expect("log file"))
            .stdout(out);
        cmd
    }

    /// Run `SCRIPT ARGS` (the lab's script) with `env` to the end, failing the test after `limit`
    /// (SIGTERM first, so that the script's trap takes its lab down). Returns
    /// its exit code and its output.
    pub fn run(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        limit: Duration,
    ) -> (Option<i32>, String) {
        let log = args.join("-");
        let mut cmd = self.command(&self.script, args, &log);
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("spawn a lab script");
        let status = wait_child_term(&mut child, limit);
        let out = fs::read_to_string(self.dir.join(format!("{log}.out"))).unwrap_or_default();
        match status {
            Some(status) => (status.code(), out),
            None => {
                let name = self.script.file_name().unwrap_or_default().to_string_lossy();
                panic!(
                    "`{name} {}` took longer than {limit:?}; output so far:\n{out}",
                    args.join(" ")
                )
            }
        }
    }

    /// What is left of this lab on the machine (empty when it is gone).
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let netns = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
        for line in String::from_utf8_lossy(&netns.stdout).lines() {
            if line.starts_with(&format!("pj{}-", self.tag)) {
                left.push(format!("namespace {line}"));
            }
        }
        let links = Command::new("ip").args(["-o", "link", "show"]).output().expect("ip link");
        for line in String::from_utf8_lossy(&links.stdout).lines() {
            if line.contains(&self.bridge()) {
                left.push(format!("link {line}"));
            }
        }
        for n in 1..=3 {
            let etc = Path::new("/etc/netns").join(self.ns(n));
            if etc.exists() {
                left.push(etc.display().to_string());
            }
        }
        let state = Path::new("/run/progjar-lab").join(&self.tag);
        if state.exists() {
            left.push(state.display().to_string());
        }
        left
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut down = self.command(&script("lab"), &["down"], "guard-down");
        if let Ok(mut child) = down.spawn() {
            let _ = wait_child(&mut child, Duration::from_secs(60));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Like [`wait_child`], but asks with SIGTERM first (a lab script's trap then
/// takes its lab down) and only then kills.
fn wait_child_term(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            crate::process::send_signal(child.id(), libc::SIGTERM);
            let _ = wait_child(child, Duration::from_secs(75));
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}
