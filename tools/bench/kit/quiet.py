"""Shared machines are noisy: wait for a quiet machine before a run, and repeat a run that
was busy all the same, each within a budget (BENCH_QUIET_WAIT, BENCH_RETRIES)."""

import time

from kit.bench import log
from kit.report import fmt_int
from kit.server import machine_cpu


def others_now(window=0.5):
    """CPU the whole machine uses over `window` seconds, in % of one core (between runs that
    is other people's work: this script's servers are stopped)."""
    m0, t0 = machine_cpu()[0], time.monotonic()
    time.sleep(window)
    return 100 * (machine_cpu()[0] - m0) / (time.monotonic() - t0)


class Quiet:
    """The budgets for waiting for a quiet machine and for repeating busy runs."""

    def __init__(self, bench):
        self.max_others = bench.max_others
        self.wait_left, self.retries_left = bench.quiet_wait, bench.retries
        self.waited, self.repeated = 0.0, 0

    def wait(self):
        said = False
        while self.wait_left > 0:
            busy = others_now()
            if busy <= self.max_others:
                return
            if not said:
                log(f"    waiting for a quiet machine (others {busy:.0f} % of a core)")
                said = True
            self.wait_left -= 0.5
            self.waited += 0.5

    def again(self, r):
        if r.get("others_busy", 0) <= self.max_others or self.retries_left <= 0:
            return False
        self.retries_left -= 1
        self.repeated += 1
        log(f"    busy machine (others {fmt_int(r.get('others_busy'))} % of a core): once more")
        return True
