"""Syscalls per echo of both servers at 1, 50 and 1000 connections × 512 B and in bulk: perf
stat on every syscall tracepoint (cheap), else strace -c (which slows the server a lot)."""

import shutil
import subprocess
import time

from kit.bench import log
from kit.report import header, machine
from kit.server import Server
from kit.stress import budget_for, stress
from modes import matrix

USAGE = "syscalls         syscalls per echo of both servers (perf stat, else strace -c)"
PICKS = ("1x512", "50x512", "1000x512", "bulk")


def settings(env):
    return matrix.settings(env)  # its rows are the matrix's


def counter(bench, pid, out):
    """(tool, process) counting the syscalls of `pid` into `out` until SIGINT."""
    if shutil.which("perf"):
        argv = ["perf", "stat", "-x,", "-e", "syscalls:sys_enter_*", "-p", str(pid), "-o", str(out)]
        return "perf", bench.children.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if shutil.which("strace"):
        argv = ["strace", "-c", "-f", "-p", str(pid), "-o", str(out)]
        return "strace", bench.children.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    raise RuntimeError("neither perf (apt-get install linux-perf) nor strace is installed")


def parse_counts(tool, path):
    counts = {}
    for line in path.read_text(errors="replace").splitlines():
        if tool == "perf":
            f = line.split(",")
            if len(f) > 2 and f[2].startswith("syscalls:sys_enter_") and f[0].isdigit() and int(f[0]):
                counts[f[2][len("syscalls:sys_enter_"):]] = int(f[0])
        else:
            f = line.split()
            if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
                counts[f[-1]] = int(f[3])
    return counts


def count_one(bench, name, sc):
    """(tool, syscalls per echo by name) of one run, or (tool, None) if it went wrong."""
    server = Server(bench, name)
    out = bench.work / f"syscalls-{name}-{sc.key}.txt"
    try:
        time.sleep(0.2)
        tool, proc = counter(bench, server.pid, out)
        time.sleep(0.5)  # let it attach
        result, problem = stress(bench, server.addr, sc.stress_args(bench.secs), budget_for(bench.secs, sc.conns))
        bench.children.interrupt(proc, timeout=30)
    finally:
        server.stop()
    if problem or not result or not result.get("messages"):
        log(f"    problem: {problem or 'no echoes'}")
        return tool, None
    counts = parse_counts(tool, out)
    log(f"    {sum(counts.values()) / result['messages']:.2f} syscalls per echo")
    return tool, {k: v / result["messages"] for k, v in counts.items()}


def run(bench, s, _which):
    picks = [sc for sc in matrix.chosen_rows(bench, s) if sc.key in PICKS]
    names = bench.servers
    per = {}
    tool = "?"
    for sc in picks:
        for name in names:
            log(f"syscalls: {name}: {sc.label}")
            tool, counts = count_one(bench, name, sc)
            if counts is not None:
                per[(sc.key, name)] = counts
    L = header(bench, f"Syscalls per echo (counted with {tool})", machine())
    for sc in picks:
        rows = {k for n in names for k in per.get((sc.key, n), {})}
        if not rows:
            continue
        L += [f"### {sc.label}", "", "| syscall | " + " | ".join(names) + " |", "|---" + "|--:" * len(names) + "|"]
        total = [sum(per.get((sc.key, n), {}).values()) for n in names]
        L.append("| **all** | " + " | ".join(f"{t:.3f}" for t in total) + " |")
        for k in sorted(rows, key=lambda k: -max(per.get((sc.key, n), {}).get(k, 0) for n in names)):
            vals = [per.get((sc.key, n), {}).get(k, 0) for n in names]
            if max(vals) >= 0.001:
                L.append(f"| {k} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
        L.append("")
    print("\n".join(L))
    return 0
