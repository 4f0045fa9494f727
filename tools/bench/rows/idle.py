"""The matrix's idle row: 50 active connections beside BENCH_IDLE silent ones, opened at
BENCH_CONNECT_RATE a second, and what an idle connection costs the server: VmRSS just before
the run and while every connection is open, the difference divided by the idle ones."""

from kit.figures import target
from kit.stress import Scenario


class Idle(Scenario):
    """A ramp: at full speed the listen backlog (1024) overflows, and with SYN cookies an idle
    client can believe it is connected while the server never sees the connection."""

    samples = True

    def figures(self, r, name, samples, rss0, fds0):
        full = [s for s in samples if s[2] >= fds0 + self.idle]
        r["rss_before_kib"] = rss0
        if full:
            # the last sample with every idle connection open: the steady state
            r["rss_after_kib"] = full[-1][1]
            r["bytes_per_idle"] = (full[-1][1] - rss0) * 1024 / self.idle
        elif samples and max(s[2] for s in samples) > fds0:
            # never all at once: divide by the connections it did hold
            _t, rss, fds = max(samples, key=lambda s: (s[2], s[0]))
            r["rss_after_kib"] = rss
            r["bytes_per_idle"] = (rss - rss0) * 1024 / (fds - fds0)
            r["note"] = (
                f"{name} never held all {self.idle + self.conns} connections at once (at most {fds - fds0}); "
                "bytes per idle connection divide by that"
            )


def rows(s):
    return [Idle("idle", f"50 conns, 512 B, + {s.idle} idle", 50, 512, idle=s.idle, rate=s.connect_rate)]


def figures(s):
    """The rows of the "Bulk and memory" table: label, where in a run's results, digits
    (None: no ratio)."""
    return [
        (f"bytes of VmRSS per idle connection ({s.idle})", ("idle", "bytes_per_idle"), 0),
        ("VmRSS KiB before the idle run", ("idle", "rss_before_kib"), None),
        (f"VmRSS KiB with {s.idle} idle + 50 active", ("idle", "rss_after_kib"), None),
    ]


def targets(s, results, label):
    return [target(results, f"bytes per idle connection at {s.idle}", "idle", ("bytes_per_idle",), "≤ 256",
                   lambda p, q: p is not None and p <= 256)]
