"""The load: progjar-stress pinned to the load core, its --json summary, and the CPU that it,
and the rest of the machine, used meanwhile; a Scenario is one kind of load (its arguments)."""

import json
import resource
import subprocess
import time

from kit.server import machine_cpu

IDLE_EXTRA_SECS = 5  # progjar-stress opens the idle connections first, within -d


def secs_arg(x):
    return str(int(x)) if float(x).is_integer() else str(x)


class Scenario:
    """One row of a table: `conns` connections of `size`-byte messages, and the options.
    `samples` asks the run for VmRSS and open descriptors every 0.2 s; `figures` adds a row's
    own figures to a run's results (see rows/idle.py)."""

    samples = False

    def __init__(self, key, label, conns, size, pipeline=None, idle=0, rate=None):
        self.key, self.label, self.conns, self.size = key, label, conns, size
        self.pipeline, self.idle, self.rate = pipeline, idle, rate

    def stress_args(self, secs):
        if self.idle:
            secs += IDLE_EXTRA_SECS
        args = ["-c", str(self.conns), "-s", str(self.size), "-d", secs_arg(secs), "--json"]
        if self.pipeline:
            args += ["--pipeline", str(self.pipeline)]
        if self.idle:
            args += ["--idle", str(self.idle)]
        if self.rate:
            args += ["--connect-rate", str(self.rate)]
        return args

    def figures(self, r, name, samples, rss0, fds0):
        """This row's own figures, from the run's samples, into `r`; none by default."""


def budget_for(secs, conns):
    """Seconds progjar-stress may take: the load, connecting, and a minute of slack."""
    return secs + conns / 500 + 60


def stress(bench, addr, args, budget, save=None):
    """Runs progjar-stress pinned to the load core; returns (parsed JSON or None, error text).

    The JSON gets more keys: `wall_s`, the seconds the process ran, `loadgen_cpu_s`, its own
    utime+stime (this script's only child reaped meanwhile), and the machine's busy and
    stolen CPU seconds over the run (`machine_cpu_s`, `steal_s`).
    """
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    m0 = machine_cpu()
    t0 = time.monotonic()
    argv = bench.pinned(bench.load_core, [bench.stress, addr] + args)
    p = bench.children.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=budget)
    except subprocess.TimeoutExpired:
        bench.children.stop(p)
        return None, f"progjar-stress still running after {budget:.0f} s; stopped"
    except BaseException:  # interrupted: stop it before the server it talks to
        bench.children.stop(p, grace=1.0)
        raise
    bench.children.forget(p)
    wall = time.monotonic() - t0
    m1 = machine_cpu()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = out.decode(errors="replace").strip()
    if save:
        save.write_text(text + "\n")
    start = text.find("{")
    try:
        result = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        result = None
    if result is None:
        tail = err.decode(errors="replace").strip()[-400:]
        return None, f"progjar-stress exit {p.returncode}, no JSON: {tail or text[-400:]}"
    result["wall_s"] = wall
    result["loadgen_cpu_s"] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    result["machine_cpu_s"] = m1[0] - m0[0]
    result["steal_s"] = m1[1] - m0[1]
    problem = ""
    if p.returncode != 0 or not result.get("ok", False):
        errors = "; ".join(str(e) for e in result.get("errors", [])[:3])
        problem = f"progjar-stress exit {p.returncode}, ok={result.get('ok')}: {errors}"
    return result, problem
