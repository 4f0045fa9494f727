"""What every mode of the bench shares: the binaries, where a run's files go, the two cores,
the length of a run and the rounds, the servers compared, and the quiet-machine budgets.
Read once from the environment by `tools/bench/run` and handed to each mode."""

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # tools/bench
ROOT = HERE.parent.parent
SERVER_NAMES = ("progjar", "tokio")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def target_dir():
    """Cargo's target directory, as tools/target-dir (the Makefile's lookup too) finds it."""
    try:
        out = subprocess.run([str(ROOT / "tools" / "target-dir")], capture_output=True, text=True,
                             timeout=120, check=True).stdout.strip()
        return Path(out) if out else ROOT / "target"
    except (OSError, subprocess.SubprocessError):
        return ROOT / "target"


class Bench:
    """The settings every mode uses; a mode's own settings are its module's `settings(env)`."""

    def __init__(self, env, children):
        self.env = env
        self.children = children
        self.here, self.root = HERE, ROOT
        target = target_dir()
        # A run's results, logs and scratch files. The committed results.md and soak.md
        # beside this script change only when someone copies a run there.
        self.work = target / "bench"
        self.progjar = env.get("PROGJAR_BIN", str(target / "release" / "progjar"))
        self.stress = env.get("STRESS_BIN", str(target / "release" / "progjar-stress"))
        self.peer = env.get("PEER_BIN", str(HERE / "target" / "release" / "progjar-bench-peer"))
        self.secs = float(env.get("BENCH_SECS", "5"))
        self.rounds = int(env.get("BENCH_ROUNDS", "3"))
        self.servers = [s for s in env.get("BENCH_SERVERS", "progjar,tokio").split(",") if s]
        for s in self.servers:
            if s not in SERVER_NAMES:
                raise RuntimeError(f"BENCH_SERVERS: unknown server {s!r} (progjar, tokio)")
        # Shared machines are noisy: before each run wait (within a total budget) until other
        # work takes at most max_others % of a core, and repeat a run that was busy all the same.
        self.max_others = float(env.get("BENCH_MAX_OTHERS", "25"))
        self.quiet_wait = float(env.get("BENCH_QUIET_WAIT", "120"))
        self.retries = int(env.get("BENCH_RETRIES", "8"))
        self.only = [k for k in env.get("BENCH_ONLY", "").split(",") if k]
        self.server_core, self.load_core = "0", "1"
        self.host = "127.0.0.1"
        self.pin = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
        self.nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    def pinned(self, core, argv):
        return (["taskset", "-c", core] if self.pin else []) + argv

    def wanted(self, key):
        """Whether BENCH_ONLY (empty: everything) asks for `key`."""
        return not self.only or key in self.only

    def shown(self, path):
        """A path relative to the checkout when it is inside it (CARGO_TARGET_DIR may be elsewhere)."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def build(self):
        """cargo build of what this run needs, unless BENCH_NO_BUILD or the *_BIN are given."""
        if self.env.get("BENCH_NO_BUILD"):
            return
        cargo = self.env.get("CARGO", "cargo")
        steps = []
        if not (self.env.get("PROGJAR_BIN") and self.env.get("STRESS_BIN")):
            steps.append([cargo, "build", "--release", "--workspace"])
        if not self.env.get("PEER_BIN") and "tokio" in self.servers:
            steps.append([cargo, "build", "--release", "--manifest-path", str(HERE / "peer" / "Cargo.toml"),
                          "--target-dir", str(HERE / "target")])
        for argv in steps:
            log("$ " + " ".join(argv))
            p = self.children.spawn(argv, cwd=self.root, stdout=sys.stderr)
            try:
                code = p.wait(timeout=1800)
            except subprocess.TimeoutExpired:
                code = "timeout"
            self.children.stop(p)
            if code != 0:
                raise RuntimeError(f"{argv[0]} build failed with code {code}")
