"""The soak (not part of `make bench`): SOAK_CONNS connections of 64 B request/response for
SOAK_SECS on one server, VmRSS sampled every SOAK_SAMPLE s: zero errors, and VmRSS flat (at
most SOAK_SLACK_KIB of growth) once every connection is open and SOAK_WARMUP s have passed."""

import time

from kit.bench import log
from kit.report import fmt_int, header, machine, write
from kit.server import Sampler, Server
from kit.stress import budget_for, secs_arg, stress

USAGE = "soak [tokio]     10000 connections for 60 s: zero errors, flat server RSS"
ENV = "  SOAK_SECS=60 SOAK_CONNS=10000 SOAK_SAMPLE=5 SOAK_WARMUP=15 SOAK_SLACK_KIB=1024"


class Settings:
    def __init__(self, env):
        self.secs = float(env.get("SOAK_SECS", "60"))
        self.conns = int(env.get("SOAK_CONNS", "10000"))
        self.every = float(env.get("SOAK_SAMPLE", "5"))
        self.warmup = float(env.get("SOAK_WARMUP", "15"))
        self.slack = int(env.get("SOAK_SLACK_KIB", "1024"))


def settings(env):
    return Settings(env)


def load(bench, s, name):
    """The soak's load on a fresh server, sampling its VmRSS and open descriptors."""
    server = Server(bench, name)
    try:
        time.sleep(0.2)
        rss0, fds0 = server.rss_kib(), server.fds()
        sampler = Sampler(server, s.every)
        sampler.start()
        cpu0 = server.cpu()
        args = ["-c", str(s.conns), "-s", "64", "-d", secs_arg(s.secs), "--json"]
        result, problem = stress(bench, server.addr, args, budget_for(s.secs, s.conns))
        cpu1 = server.cpu() if server.alive() else None
        samples = sampler.finish()
        if not server.alive():
            problem = (problem + "; " if problem else "") + f"{name} exited: {server.stderr_tail()}"
        cpu = sum(cpu1) - sum(cpu0) if cpu1 is not None else None
    finally:
        server.stop()
    return result, problem, samples, rss0, fds0, cpu


def growth_after_warmup(s, samples, fds0):
    """KiB VmRSS grew once the warm-up ended: every connection open and `warmup` s passed."""
    opened = next((x[0] for x in samples if x[2] >= fds0 + s.conns), None)
    after = [x for x in samples if opened is not None and x[0] >= max(s.warmup, opened)]
    return (max(x[1] for x in after) - after[0][1]) if len(after) >= 2 else None


def run(bench, s, name):
    if bench.nofile_hard < s.conns + 1000:
        log(f"warning: open-file hard limit {bench.nofile_hard} is below the {s.conns} connections the soak opens")
    log(f"soak: {name}, {s.conns} connections × {secs_arg(s.secs)} s, VmRSS every {secs_arg(s.every)} s")
    t0 = time.monotonic()
    result, problem, samples, rss0, fds0, cpu = load(bench, s, name)
    j = result or {}
    growth = growth_after_warmup(s, samples, fds0)
    flat = growth is not None and growth <= s.slack
    zero_errors = bool(j) and j.get("ok") is True and not j.get("errors") and j.get("connections_failed") == 0
    zero_errors = zero_errors and not problem
    L = header(bench, f"Soak: {name}, {s.conns} connections × {secs_arg(s.secs)} s", machine())
    L += [
        f"Command: `tools/bench/run soak{'' if name == 'progjar' else ' tokio'}` "
        f"(SOAK_SECS={secs_arg(s.secs)}, SOAK_CONNS={s.conns}; 64 B request/response on every connection).",
        "",
        "| check | measured | needed | result |",
        "|---|---|---|---|",
        f"| errors | connections_ok {fmt_int(j.get('connections_ok'))}, failed {fmt_int(j.get('connections_failed'))}, "
        f"errors {len(j.get('errors') or [])}, ok {j.get('ok')} | zero | {'PASS' if zero_errors else 'MISS'} |",
        f"| VmRSS growth after warm-up | {fmt_int(growth)} KiB | ≤ {s.slack} KiB | {'PASS' if flat else 'MISS'} |",
        "",
        f"Echoes: {fmt_int(j.get('messages'))} ({fmt_int(j.get('messages_per_sec'))}/s), "
        f"p99 {fmt_int((j.get('latency_us') or {}).get('p99'))} µs, "
        f"max {fmt_int((j.get('latency_us') or {}).get('max'))} µs; server CPU "
        + (f"{cpu / j['messages'] * 1e9:,.0f} ns/echo" if cpu is not None and j.get("messages") else "n/a")
        + f"; VmRSS at start {fmt_int(rss0)} KiB.",
        "",
        "| s | open fds | VmRSS KiB |",
        "|--:|--:|--:|",
    ]
    L += [f"| {t:.0f} | {f} | {r:,} |" for t, r, f in samples]
    if problem:
        L += ["", f"Problem: {problem}"]
    L.append("")
    out = write(bench, "soak.md" if name == "progjar" else f"soak-{name}.md", "\n".join(L))
    log(f"written to {bench.shown(out)}; took {(time.monotonic() - t0) / 60:.1f} min")
    if name == "progjar":
        log(f"to make it the committed soak: cp {bench.shown(out)} {bench.shown(bench.here / 'soak.md')}")
    return 0 if zero_errors and flat else 1
