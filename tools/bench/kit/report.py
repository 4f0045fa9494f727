"""The bench's markdown: numbers as words (the project's convention, README "Numbers": counts
grouped in thousands, byte rates in MiB/s), tables, and the header naming the machine."""

import datetime
import os
import subprocess

MIB = 1 << 20


def fmt_int(x):
    return "n/a" if x is None else f"{x:,.0f}"


def fmt_f(x, digits=1):
    return "n/a" if x is None else f"{x:.{digits}f}"


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.2f}×" if x >= 0.1 else f"{x:.4f}×"


def mib_per_s(nbytes, secs):
    """A byte rate in MiB/s (2^20 bytes a second)."""
    return nbytes / MIB / secs


def table(cols, rows):
    out = ["| " + " | ".join(cols) + " |", "|---" + "|--:" * (len(cols) - 1) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def loadavg():
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rustc = "rustc not found"
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem": mem,
        "kernel": os.uname().release,
        "rustc": rustc,
    }


def header(bench, title, m):
    pin = ("server pinned to core 0, progjar-stress to core 1" if bench.pin
           else "no pinning (fewer than 2 cores or no taskset)")
    return [
        f"## {title}",
        "",
        f"Run on {m['date']}: {m['nproc']} × {m['cpu']} (`nproc` {m['nproc']}), {m['mem']}, "
        f"Linux {m['kernel']}, {m['rustc']}; {pin}; loopback 127.0.0.1.",
        "",
    ]


def write(bench, name, report):
    """Prints a mode's report and keeps it as TARGET/bench/NAME; returns the file."""
    print(report)
    bench.work.mkdir(parents=True, exist_ok=True)
    out = bench.work / name
    out.write_text(report)
    return out
