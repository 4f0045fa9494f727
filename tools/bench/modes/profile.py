"""Where a server's CPU goes at 1000 connections × 512 B: perf record of the server while the
load runs, and the top of perf report."""

import shutil
import subprocess
import time

from kit.bench import log
from kit.server import Server
from kit.stress import budget_for, stress
from modes import matrix

USAGE = "profile [tokio]  where the server's CPU goes at 1000 connections (perf record)"
ROW = "1000x512"


def settings(env):
    return matrix.settings(env)  # its row is the matrix's


def run(bench, s, name):
    if not shutil.which("perf"):
        raise RuntimeError("perf is not installed (apt-get install linux-perf)")
    sc = next(sc for sc in matrix.all_rows(s) if sc.key == ROW)
    server = Server(bench, name)
    data = bench.work / f"perf-{name}.data"
    try:
        time.sleep(0.2)
        rec = bench.children.spawn(["perf", "record", "-F", "999", "-g", "-p", str(server.pid), "-o", str(data)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        _, problem = stress(bench, server.addr, sc.stress_args(bench.secs), budget_for(bench.secs, sc.conns))
        bench.children.interrupt(rec, timeout=60)
    finally:
        server.stop()
    if problem:
        log(f"problem: {problem}")
    rep = subprocess.run(
        ["perf", "report", "-i", str(data), "--no-children", "--stdio", "-g", "none", "--percent-limit", "0.7"],
        capture_output=True, text=True, timeout=300,
    )
    print(f"## perf profile of {name}, {sc.label} ({bench.shown(data)})\n")
    print("\n".join(l for l in rep.stdout.splitlines() if l.strip() and not l.startswith("#")))
    return 0
