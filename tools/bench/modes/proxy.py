"""The proxy (`tools/bench/run proxy`, also the end of `make bench`): `progjar proxy` against
Debian's HAProxy (`nbthread 1`, TCP mode) in the same run, each in front of a fresh progjar echo
server. The relay is pinned to the server's core; the echo server and the load generator share
the other core, so the relay's CPU time is its own. Rows (rows/relay_*.py): CPU per relayed 512 B
echo at 50 and 1000 connections, CPU per GiB relayed in bulk (against HAProxy with splice; the
read/write variants of both beside it), VmRSS per idle relayed client after one echo, and
BENCH_PROXY_MANY relayed clients with every byte checked. Each ratio is progjar ÷ the
reference, the median of each round's ratio."""

import shutil
import time

from kit.bench import log
from kit.figures import get, paired
from kit.quiet import Quiet
from kit.relay import RELAYS
from kit.report import fmt_f, fmt_int, fmt_ratio, loadavg, machine, table, write
from kit.stress import secs_arg
from rows import relay_echo, relay_idle, relay_many

USAGE = """proxy            progjar proxy against HAProxy: CPU per relayed echo and per GiB,
                                   memory per idle relayed client, BENCH_PROXY_MANY clients"""
ENV = """  BENCH_PROXY_BULK_MIB=1024  MiB each way in the proxy's bulk row
  BENCH_PROXY_IDLE=5000  relayed clients in the proxy's memory row (one echo each, then idle)
  BENCH_PROXY_MANY=10000 relayed clients at once in the proxy's last row, every byte checked
  BENCH_PROXY_CONNECT_RATE=5000  connections opened per second in that row"""

# The kinds of row, in the report's order: a new kind is a file in rows/ and a line here.
ROW_KINDS = (relay_echo, relay_idle, relay_many)


class Settings:
    def __init__(self, env):
        self.bulk_mib = int(env.get("BENCH_PROXY_BULK_MIB", "1024"))
        self.idle = int(env.get("BENCH_PROXY_IDLE", "5000"))
        self.many = int(env.get("BENCH_PROXY_MANY", "10000"))
        self.connect_rate = int(env.get("BENCH_PROXY_CONNECT_RATE", "5000"))


def settings(env):
    return Settings(env)


def chosen_rows(bench, s):
    """Every row, or those BENCH_ONLY names (proxy-50x512, proxy-bulk, proxy-idle, ...)."""
    rows = [row for kind in ROW_KINDS for row in kind.rows(s)]
    named = [row for row in rows if row.key in bench.only]
    return named or rows


def measure(bench, quiet, row, name, rnd):
    """One run of `row` through relay `name`, repeated once when the machine was busy; the
    quieter attempt counts."""
    best = None
    for _attempt in range(2):
        quiet.wait()
        try:
            r = row.measure(bench, name, rnd)
        except (RuntimeError, OSError) as e:
            r = {"problem": str(e)}
        if best is None or r.get("others_busy", 1e9) < best.get("others_busy", 1e9):
            best = r
        if not quiet.again(r):
            break
    log(f"    {row.said(best)}" + (f"  PROBLEM: {best['problem']}" if best.get("problem") else ""))
    return best


def run(bench, s, _which):
    have_haproxy = shutil.which("haproxy") is not None
    if not have_haproxy:
        log("warning: no haproxy (make deps installs it): its columns stay empty and its ratios MISS")
    rows = chosen_rows(bench, s)
    results, quiet, t0, load0 = {}, Quiet(bench), time.monotonic(), loadavg()
    for rnd in range(1, bench.rounds + 1):
        for row in rows:
            if row.ref is None and rnd > 1:
                continue  # a row with nothing to hold it against runs once
            relays = [n for n in row.relays if have_haproxy or not n.startswith("haproxy")]
            for name in relays if rnd % 2 else relays[::-1]:  # alternate: drift favours neither
                log(f"[proxy] round {rnd}, {name}: {row.label}")
                results.setdefault((row.key, name), []).append(measure(bench, quiet, row, name, rnd))
    elapsed = time.monotonic() - t0
    out = write(bench, "proxy.md", report(bench, s, rows, results, elapsed, (load0, loadavg()), quiet))
    log(f"written to {bench.shown(out)}; took {elapsed / 60:.1f} min")
    ok = all(not r.get("problem") for (k, n), rs in results.items() if n == "progjar" for r in rs)
    return 0 if ok and results else 1


def report(bench, s, rows, results, elapsed, load, quiet):
    m = machine()
    lines = [
        "## The proxy: progjar proxy vs HAProxy",
        "",
        f"Run on {m['date']}: {m['nproc']} × {m['cpu']} (`nproc` {m['nproc']}), {m['mem']}, Linux {m['kernel']}, "
        f"{m['rustc']}; loopback 127.0.0.1. Command: `tools/bench/run proxy` (BENCH_SECS={secs_arg(bench.secs)}, "
        f"BENCH_ROUNDS={bench.rounds}, BENCH_PROXY_BULK_MIB={s.bulk_mib}, BENCH_PROXY_IDLE={s.idle}, "
        f"BENCH_PROXY_MANY={s.many}); {elapsed / 60:.1f} min, load average {load[0]} before and {load[1]} after; "
        f"waited {quiet.waited:.0f} s for a quiet machine, repeated {quiet.repeated} busy runs. The relay is pinned "
        f"to core {bench.server_core}; its backend (a progjar echo server) and progjar-stress to core "
        f"{bench.load_core}. Relay CPU is its utime+stime over the run; figures are medians of the rounds.",
        "",
        "Relays: " + "; ".join(f"`{n}`: {w}" for n, w in RELAYS.items()) + ".",
        "",
    ]
    body = []
    for row in rows:
        for name in row.relays:
            rs = results.get((row.key, name), [])
            if not rs:
                continue
            fig = get(results, row.key, name, row.figure)
            rate = get(results, row.key, name, "json", "messages_per_sec")
            body.append([row.label, f"`{name}`", fmt_f(fig, row.digits) if row.digits else fmt_int(fig),
                         row.unit, fmt_int(rate)])
    lines += table(["row", "relay", "figure", "unit", "echoes/s"], body)
    lines += ["", "### Targets", "", "| target | progjar | reference | ratio | needed | result |", "|---|--:|--:|--:|---|---|"]
    for row in rows:
        ours = get(results, row.key, "progjar", row.figure)
        ref = get(results, row.key, row.ref, row.figure) if row.ref else None
        ratio = paired(results, row.key, row.figure, ours="progjar", ref=row.ref) if row.ref else None
        fmt = (lambda x: fmt_f(x, row.digits)) if row.digits else fmt_int
        verdict = "PASS" if row.met(ours, ratio) else "MISS"
        against = f"{fmt(ref)} (`{row.ref}`)" if row.ref else ""
        lines.append(f"| {row.label}: {row.unit} | {fmt(ours)} | {against} | {fmt_ratio(ratio) if row.ref else ''} "
                     f"| {row.goal} | {verdict} |")
    many = [r for r in results.get(("proxy-many", "progjar"), []) if r.get("procs")]
    if many:
        lines += ["", f"The many-clients row ran {many[-1]['procs']} proxy process(es) of one loop each "
                  f"(the open-file hard limit is {bench.nofile_hard:,}; each relayed client is 2 descriptors)."]
    found = [(k, n, i + 1, r["problem"]) for (k, n), rs in results.items() for i, r in enumerate(rs)
             if r.get("problem")]
    if found:
        lines += ["", "### Errors", ""] + [f"- {n}, {k}, round {i}: {p}" for k, n, i, p in found]
    lines.append("")
    return "\n".join(lines)
