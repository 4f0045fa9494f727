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

use std::time::Duration;

use common::lab::{self, works};
use common::{progjar_stress_path, skip_unless_lab};

/// The longest one scenario may take (it usually takes 10 to 15 s).
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Why the scaled lab cannot be built here, if it cannot.
fn cannot_run() -> Option<String> {
    let tools = [("ip", "-V"), ("unshare", "--version"), ("ss", "-V"), ("python3", "-V")];
    lab::cannot_run(&tools).or_else(|| {
        if !works("haproxy", "-v") {
            return Some(
                "haproxy is not installed (make deps installs it: apt-get install haproxy)".into(),
            );
        }
        let stress = progjar_stress_path();
        (!stress.exists()).then(|| {
            format!(
                "no {} (cargo build --workspace, or cargo test --workspace, builds it)",
                stress.display()
            )
        })
    })
}

/// One scaled lab of this test (`tools/lab/scale`); dropping it takes the lab
/// down (mesin4 and HAProxy included) and removes the directory.
struct Lab(lab::Lab);

impl Lab {
    fn new(suffix: char) -> Lab {
        Lab(lab::Lab::new("scale", "s", suffix))
    }

    /// Run `tools/lab/scale SCENARIO` to the end, bounded by [`RUN_LIMIT`].
    fn run(&self, scenario: &str) -> (Option<i32>, String) {
        self.0.run(&[scenario], &[], RUN_LIMIT)
    }

    /// What is left of this lab (empty when it is gone).
    fn leftovers(&self) -> Vec<String> {
        self.0.leftovers()
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
