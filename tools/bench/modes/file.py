"""The file row: `progjar client 127.0.0.1:PORT --file F` of a BENCH_FILE_MIB (1 GiB) random
file through progjar's server, client and server on their own cores; the client verifies every
byte. The figure is MiB/s over the client's whole run, median and best of the rounds; the
target is at least 10^9 bytes/s (953.7 MiB/s), which needs reads far larger than the course's
16 bytes."""

import os
import statistics
import subprocess
import time

from kit.bench import log
from kit.report import MIB, fmt_int, loadavg, mib_per_s, table, write
from kit.server import Server

USAGE = """file             `progjar client --file` of 1 GiB through the server:
                                   MiB/s, target at least 10^9 bytes/s (BENCH_FILE_MIB=1024)"""
ENV = "  BENCH_FILE_MIB=1024    size of the file the `file` row sends (made once, of random bytes)"
TARGET_BYTES_PER_SEC = 1e9


class Settings:
    def __init__(self, env):
        self.mib = int(env.get("BENCH_FILE_MIB", "1024"))


def settings(env):
    return Settings(env)


def random_file(bench, mib):
    """TARGET/bench/file-NMiB.bin of random bytes, written once and kept for the next run."""
    path = bench.work / f"file-{mib}MiB.bin"
    bench.work.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.stat().st_size != mib * MIB:
        log(f"[file] writing {mib} MiB of random bytes to {bench.shown(path)}")
        with open(path, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(MIB))
    return path


def one_run(bench, s, path, rnd):
    """MiB/s of one client's whole run through a fresh server, or None."""
    server = Server(bench, "progjar")
    try:
        argv = bench.pinned(bench.load_core, [bench.progjar, "client", server.addr, "--file", str(path)])
        t0 = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        secs = time.monotonic() - t0
    finally:
        server.stop()
    line = done.stdout.strip()
    if done.returncode != 0 or "identical" not in line:
        log(f"    PROBLEM (exit {done.returncode}): {line} {done.stderr.strip()[-300:]}")
        return None
    speed = mib_per_s(s.mib * MIB, secs)
    log(f"    round {rnd}: {line} ({speed:.0f} MiB/s over the client's whole run)")
    return speed


def run(bench, s, _which):
    path = random_file(bench, s.mib)
    speeds, load0 = [], loadavg()
    for rnd in range(1, bench.rounds + 1):
        speed = one_run(bench, s, path, rnd)
        if speed is not None:
            speeds.append(speed)
    med = statistics.median(speeds) if speeds else None
    goal = TARGET_BYTES_PER_SEC / MIB
    verdict = "n/a" if med is None else ("ok" if med >= goal else "MISS")
    report = "\n".join([
        "## A file through the server",
        "",
        f"Command: `BENCH_FILE_MIB={s.mib} tools/bench/run file` (BENCH_ROUNDS={bench.rounds}); "
        f"load average {load0} before, {loadavg()} after. Client (verifying every byte) on core "
        f"{bench.load_core}, server on core {bench.server_core}; MiB/s = 2^20 bytes/s over the client's whole run.",
        "",
        *table(
            ["run", "median", "best", "target"],
            [[f"{s.mib} MiB --file", f"{fmt_int(med)} MiB/s",
              f"{fmt_int(max(speeds) if speeds else None)} MiB/s", f"≥ {goal:.1f} MiB/s (10^9 bytes/s) {verdict}"]],
        ),
        "",
    ])
    out = write(bench, "file.md", report)
    log(f"written to {bench.shown(out)}")
    return 0 if speeds else 1
