"""The matrix (`make bench`): every row of rows/ on both servers, BENCH_ROUNDS rounds, a fresh
server for each run; the tables of echoes/s, p99, CPU per echo, bulk and memory, where the
time went, and the targets, into TARGET/bench/results.md."""

import time

from kit.bench import SERVER_NAMES, log
from kit.figures import get, paired
from kit.quiet import Quiet
from kit.report import fmt_f, fmt_int, fmt_ratio, header, loadavg, machine, table, write
from kit.server import Sampler, Server
from kit.stress import budget_for, secs_arg, stress
from rows import crr, echo, idle

USAGE = "                 the matrix, both servers; table to stdout and TARGET/bench/results.md"
ENV = """  BENCH_PIPELINE=16      64 KiB messages in flight in the bulk run
  BENCH_IDLE=10000       idle connections in the idle run
  BENCH_CONNECT_RATE=5000   connections opened per second in the idle run"""

# The kinds of row, in the tables' order: a new kind is a file in rows/ and a line here.
ROW_KINDS = (
    echo,
    idle,
    crr,
)


class Settings:
    def __init__(self, env):
        self.pipeline = int(env.get("BENCH_PIPELINE", "16"))
        self.idle = int(env.get("BENCH_IDLE", "10000"))
        self.connect_rate = int(env.get("BENCH_CONNECT_RATE", "5000"))


def settings(env):
    return Settings(env)


def all_rows(s):
    return [sc for kind in ROW_KINDS for sc in kind.rows(s)]


def chosen_rows(bench, s):
    """The rows BENCH_ONLY names (for a quick look: BENCH_ONLY=1000x512,idle), else all."""
    rows = all_rows(s)
    return [sc for sc in rows if sc.key in bench.only] or rows


# ---------------------------------------------------------------- one run


def cpu_figures(r, result, cpu0, cpu1):
    """Server CPU per echo and where the time went, from the server's (utime, stime) before
    and after the run and progjar-stress's own figures."""
    user, sys_ = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    r["cpu_s"] = user + sys_
    r["cpu_ns_per_echo"] = (user + sys_) / result["messages"] * 1e9
    r["kernel_share"] = 100 * sys_ / (user + sys_) if user + sys_ else None
    r["user_ns_per_echo"] = user / result["messages"] * 1e9
    r["server_busy"] = 100 * (user + sys_) / result["wall_s"]
    r["loadgen_busy"] = 100 * result["loadgen_cpu_s"] / result["wall_s"]
    others = result["machine_cpu_s"] - r["cpu_s"] - result["loadgen_cpu_s"]
    r["others_busy"] = max(0.0, 100 * others / result["wall_s"])
    r["steal"] = 100 * result["steal_s"] / result["wall_s"]


def measure(bench, name, sc, rnd):
    """Fresh server, one scenario; returns a dict of figures (and 'problem' if any)."""
    server = Server(bench, name)
    try:
        time.sleep(0.2)
        rss0, fds0 = server.rss_kib(), server.fds()
        sampler = Sampler(server, 0.2) if sc.samples else None
        if sampler:
            sampler.start()
        cpu0 = server.cpu()
        save = bench.work / f"{name}-{sc.key}-round{rnd}.json"
        budget = budget_for(bench.secs, sc.conns + sc.idle)
        result, problem = stress(bench, server.addr, sc.stress_args(bench.secs), budget, save)
        cpu1 = server.cpu() if server.alive() else None
        samples = sampler.finish() if sampler else []
        if not server.alive():
            problem = (problem + "; " if problem else "") + (
                f"{name} exited with code {server.proc.returncode}: {server.stderr_tail()}"
            )
        r = {"problem": problem, "json": result}
        if samples:
            (bench.work / f"{name}-{sc.key}-round{rnd}.samples").write_text(
                "".join(f"{t:.2f} {rss} {fds}\n" for t, rss, fds in samples)
            )
        if result and cpu1 is not None and result.get("messages"):
            cpu_figures(r, result, cpu0, cpu1)
        if sc.samples:
            sc.figures(r, name, samples, rss0, fds0)
        return r
    finally:
        server.stop()


def best_of_two(bench, quiet, name, sc, rnd):
    """One run, repeated once when the machine was busy; the quieter attempt counts."""
    r = None
    for _attempt in range(2):
        quiet.wait()
        try:
            a = measure(bench, name, sc, rnd)
        except RuntimeError as e:
            a = {"problem": str(e)}
        if r is None or a.get("others_busy", 1e9) < r.get("others_busy", 1e9):
            r = a
        if not quiet.again(a):
            break
    return r


def said(sc, r):
    j = r.get("json") or {}
    return (
        f"    {fmt_int(j.get('messages_per_sec'))} echoes/s, "
        f"p99 {fmt_int((j.get('latency_us') or {}).get('p99'))} µs, "
        f"{fmt_int(r.get('cpu_ns_per_echo'))} ns CPU/echo "
        f"(server core {fmt_int(r.get('server_busy'))} %, stress core {fmt_int(r.get('loadgen_busy'))} %, "
        f"others {fmt_int(r.get('others_busy'))} %)"
        + (f", {fmt_int(r.get('bytes_per_idle'))} B/idle conn" if sc.idle else "")
        + (f"  PROBLEM: {r['problem']}" if r.get("problem") else "")
        + (f"  note: {r['note']}" if r.get("note") else "")
    )


def run(bench, s, _which):
    if bench.nofile_hard < s.idle + 1000:
        log(f"warning: open-file hard limit {bench.nofile_hard} is below the {s.idle} idle connections "
            "the matrix opens")
    rows = chosen_rows(bench, s)
    t0 = time.monotonic()
    load0 = loadavg()
    results = {}
    quiet = Quiet(bench)
    total = len(rows) * len(bench.servers) * bench.rounds
    i = 0
    for rnd in range(1, bench.rounds + 1):
        # alternate which server goes first, so that drift favours neither
        order = bench.servers if rnd % 2 else bench.servers[::-1]
        for sc in rows:
            for name in order:
                i += 1
                log(f"[{i}/{total}] round {rnd}, {name}: {sc.label}")
                r = best_of_two(bench, quiet, name, sc, rnd)
                results.setdefault((sc.key, name), []).append(r)
                log(said(sc, r))
    elapsed = time.monotonic() - t0
    report = matrix_report(bench, s, rows, results, machine(), elapsed, (load0, loadavg()), quiet)
    # a partial matrix must not be mistaken for the full one that docs/bench.md quotes
    partial = len(rows) < len(all_rows(s)) or len(bench.servers) < len(SERVER_NAMES)
    out = write(bench, "results-partial.md" if partial else "results.md", report)
    log(f"written to {bench.shown(out)}; took {elapsed / 60:.1f} min")
    if not partial:
        log(f"to make it the committed table: cp {bench.shown(out)} {bench.shown(bench.here / 'results.md')}")
    measured = all(r.get("json") and "cpu_ns_per_echo" in r for rs in results.values() for r in rs)
    return 0 if measured else 1


# ---------------------------------------------------------------- the report


def matrix_report(bench, s, rows, results, m, elapsed, load, quiet):
    """The matrix as markdown: how it ran, then one section per kind of figure."""
    names = [n for n in SERVER_NAMES if n in bench.servers]
    L = header(bench, "Benchmark: progjar vs a tokio echo server", m)
    L += how_it_ran(bench, s, results, elapsed, load, quiet)
    L += echo_table(rows, results, names)
    L += bulk_and_memory_table(s, results, names)
    L += time_table(rows, results, names)
    if "progjar" in names:
        L += ["", "### Targets", "", "| target | progjar | tokio | ratio | needed | result |", "|---|--:|--:|--:|---|---|"]
        L += targets(bench, s, rows, results)
    L += listed(results, "problem", "Errors") + listed(results, "note", "Notes")
    L.append("")
    return "\n".join(L)


def how_it_ran(bench, s, results, elapsed, load, quiet):
    busy = sum(1 for rs in results.values() for r in rs if r.get("others_busy", 0) > bench.max_others)
    runs = sum(len(rs) for rs in results.values())
    secs, rounds = secs_arg(bench.secs), bench.rounds
    return [
        f"Command: `make bench` (`tools/bench/run`; BENCH_SECS={secs}, BENCH_ROUNDS={rounds}): "
        f"{secs} s of load per run, a fresh server for each run, {rounds} rounds; "
        f"the whole run took {elapsed / 60:.1f} min. Load average {load[0]} before and {load[1]} after; "
        f"waited {quiet.waited:.0f} s for a quiet machine and repeated {quiet.repeated} busy runs; "
        f"{busy} of {runs} runs kept still had other work above {bench.max_others:.0f} % of a core.",
        "",
        "The peer is `tools/bench/peer`: tokio, current-thread runtime, a task per connection, "
        "64 KiB read buffer, `write_all`. An echo is one message sent and the same bytes received "
        "back; every run but the bulk one waits for each echo before sending the next "
        f"(request/response), the bulk one keeps {s.pipeline} messages of 64 KiB in flight. Server CPU "
        "is the server's utime+stime over the run divided by the echoes. Each figure is the median "
        "of the rounds; each ratio (progjar ÷ tokio) is the median of the rounds' ratios, the two "
        "servers of a round having run one right after the other.",
        "",
    ]


def echo_table(rows, results, names):
    both = len(names) == 2
    cols = ["run"]
    for title in ("echoes/s", "p99 µs", "server CPU ns/echo"):
        cols += [f"{title} {n}" for n in names] + (["ratio"] if both else [])
    out = []
    for sc in rows:
        row = [sc.label]
        for path in (("json", "messages_per_sec"), ("json", "latency_us", "p99"), ("cpu_ns_per_echo",)):
            row += [fmt_int(get(results, sc.key, n, *path)) for n in names]
            if both:
                row.append(fmt_ratio(paired(results, sc.key, *path)))
        out.append(row)
    return table(cols, out)


def bulk_and_memory_table(s, results, names):
    both = len(names) == 2
    out = []
    for label, (key, *path), digits in [f for kind in ROW_KINDS for f in kind.figures(s)]:
        vals = [get(results, key, n, *path) for n in names]
        row = [label] + [fmt_int(v) if digits in (0, None) else fmt_f(v, digits) for v in vals]
        if both:
            row.append(fmt_ratio(paired(results, key, *path)) if digits is not None else "")
        out.append(row)
    return ["", "Bulk and memory:", ""] + table(["figure"] + names + (["ratio"] if both else []), out)


def time_table(rows, results, names):
    intro = [
        "",
        "Where the time went (medians): each core's busy share over the run (CPU seconds ÷ wall "
        "seconds), the server's share spent in the kernel (stime) and its user-space CPU per echo "
        "(utime ÷ echoes: the part the server's own code decides), and the CPU that everything else "
        "on the machine took meanwhile (other processes, interrupts, this script), in % of one core. "
        "A load generator near 100 % means the run measured progjar-stress more than the server; "
        "others above a few % mean the machine was not quiet.",
        "",
    ]
    cols = ["run"]
    for title in ("server core %", "server in kernel %", "server user ns/echo", "progjar-stress core %", "others %"):
        cols += [f"{title} {n}" for n in names]
    out = []
    for sc in rows:
        row = [sc.label]
        for path in ("server_busy", "kernel_share", "user_ns_per_echo", "loadgen_busy", "others_busy"):
            row += [fmt_int(get(results, sc.key, n, path)) for n in names]
        out.append(row)
    return intro + table(cols, out)


def listed(results, field, title):
    """Every run's `field` (its problem, its note), as a list under `title`."""
    found = [(k, n, i + 1, r[field]) for (k, n), rs in results.items() for i, r in enumerate(rs) if r.get(field)]
    if not found:
        return []
    return ["", f"### {title}", ""] + [f"- {n}, {k}, round {i}: {p}" for k, n, i, p in found]


def targets(bench, s, rows, results):
    labels = {sc.key: sc.label for sc in rows}

    def label(key):
        return labels.get(key, key)

    out = [line for kind in ROW_KINDS for line in kind.targets(s, results, label)]
    clean = all(not r.get("problem") for (k, n), rs in results.items() if n == "progjar" for r in rs)
    out.append(f"| progjar runs without errors | {'yes' if clean else 'no'} | | | all | {'PASS' if clean else 'MISS'} |")
    if "tokio" not in bench.servers:
        out.append("| (tokio not run: comparisons are MISS) | | | | | |")
    return out
