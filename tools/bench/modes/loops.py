"""The --loops row: CPU per echo of progjar with 2 loops ÷ 1 loop at 1000 connections × 64 B
(target ≤ 1.05), and how the kernel split the 1000 connections between the 2 loops.

Both are pinned to the server's one core, so the 2 loops share the core the 1 loop had: the
figure is what splitting the work costs, not what more cores gain (this machine's other core
runs the load generator). Throughput scaling needs a bigger machine: docs/server.md, "More
cores"."""

import re
import statistics

from kit.bench import log
from kit.report import fmt_int, fmt_ratio, loadavg, table, write
from kit.server import Server
from kit.stress import Scenario, budget_for, secs_arg, stress

USAGE = """loops            the --loops row alone: CPU per echo with 2 loops ÷ 1 loop,
                                   and how 1000 connections split between 2 loops"""
# The summaries only (each loop's and the total), never a line per connection.
LOG = "warn,progjar::server=info"
TARGET = 1.05


def settings(_env):
    return None  # BENCH_SECS and BENCH_ROUNDS only


def loop_split(server):
    """Connections each loop served, from its summary line `loop K: served N connections`."""
    text = server.err_path.read_text(errors="replace")
    return [int(n.replace(",", "")) for _k, n in re.findall(r"loop (\d+): served ([\d,]+) connection", text)]


def one_run(bench, sc, n):
    """(ns CPU per echo, echoes/s, split) of one run with --loops n, or None."""
    server = Server(bench, "progjar", extra=["--loops", str(n)], log_level=LOG)
    try:
        cpu0 = server.cpu()
        result, problem = stress(bench, server.addr, sc.stress_args(bench.secs), budget_for(bench.secs, sc.conns))
        cpu1 = server.cpu() if server.alive() else None
    finally:
        server.stop()
    if problem or not result or cpu1 is None or not result.get("messages"):
        log(f"    PROBLEM: {problem or 'no figures'}")
        return None
    ns = (sum(cpu1) - sum(cpu0)) / result["messages"] * 1e9
    split = loop_split(server) if n == 2 else []
    log(f"    {fmt_int(result['messages_per_sec'])} echoes/s, {fmt_int(ns)} ns CPU/echo"
        + (f", split {' / '.join(map(str, split))}" if split else ""))
    return ns, result["messages_per_sec"], split


def run(bench, _s, _which):
    sc = Scenario("loops", "1000 conns, 64 B", 1000, 64)
    ns, rate, splits = {1: [], 2: []}, {1: [], 2: []}, []
    load0 = loadavg()
    for rnd in range(1, bench.rounds + 1):
        for n in (1, 2) if rnd % 2 else (2, 1):  # alternate, so that drift favours neither
            log(f"[loops] round {rnd}, --loops {n}: {sc.label}")
            got = one_run(bench, sc, n)
            if got:
                ns[n].append(got[0])
                rate[n].append(got[1])
                splits += [got[2]] if got[2] else []
    med = {n: statistics.median(v) if v else None for n, v in ns.items()}
    ratio = med[2] / med[1] if med[1] and med[2] else None
    split = " / ".join(map(str, splits[-1])) if splits else "n/a"
    verdict = "n/a" if ratio is None else ("ok" if ratio <= TARGET else "MISS")
    report = "\n".join([
        "## More cores: --loops",
        "",
        f"Command: `BENCH_SERVERS=progjar tools/bench/run loops` (BENCH_SECS={secs_arg(bench.secs)}, "
        f"BENCH_ROUNDS={bench.rounds}); load average {load0} before, {loadavg()} after. Server pinned to one "
        "core either way: the 2 loops share it, so this is what splitting costs, not what cores gain.",
        "",
        *table(
            ["run", "CPU/echo, 1 loop", "CPU/echo, 2 loops", f"2 ÷ 1 (target ≤ {TARGET})",
             "echoes/s, 1 / 2 loops", "split of 1000 connections"],
            [[sc.label, f"{fmt_int(med[1])} ns", f"{fmt_int(med[2])} ns",
              f"{fmt_ratio(ratio)} {verdict}",
              f"{fmt_int(statistics.median(rate[1]) if rate[1] else None)} / "
              f"{fmt_int(statistics.median(rate[2]) if rate[2] else None)}", split]],
        ),
        "",
    ])
    out = write(bench, "loops.md", report)
    log(f"written to {bench.shown(out)}")
    return 0 if ratio is not None else 1
