"""The proxy's rows through progjar-stress: request/response of 512 B at 50 and 1000
connections (each waits for its echo before sending the next), and bulk (one connection,
BENCH_PROXY_BULK_MIB each way, 16 messages of 64 KiB in flight). The figure is the relay's CPU
(utime+stime from /proc) per relayed echo, and per GiB relayed (both directions counted: every
byte crosses the relay once each way). Goals: at most HAProxy's (ratio ≤ 1.0)."""

import time

from kit.relay import Relay
from kit.stress import budget_for, secs_arg, stress

GIB = 1 << 30


class Exchange:
    """One row: `conns` connections of `size`-byte messages through each relay in `relays`,
    the first being ours and `ref` the one it is held against."""

    def __init__(self, key, label, conns, size, relays, ref, figure, unit, pipeline=None, messages=None):
        self.key, self.label, self.conns, self.size = key, label, conns, size
        self.relays, self.ref, self.figure, self.unit = relays, ref, figure, unit
        self.pipeline, self.messages = pipeline, messages
        # µs per echo to the hundredth; ms per GiB whole (CPU time comes in 10 ms ticks)
        self.goal, self.digits = "ratio ≤ 1.0", 0 if messages else 2

    def met(self, ours, ratio):
        return ratio is not None and ratio <= 1.0

    def args(self, secs):
        args = ["-c", str(self.conns), "-s", str(self.size), "--json"]
        args += ["-n", str(self.messages)] if self.messages else ["-d", secs_arg(secs)]
        return args + (["--pipeline", str(self.pipeline)] if self.pipeline else [])

    def measure(self, bench, name, rnd):
        relay = Relay(bench, name, self.conns)
        try:
            time.sleep(0.2)
            cpu0, back0 = relay.cpu(), relay.backend_cpu()
            save = bench.work / f"proxy-{name}-{self.key}-round{rnd}.json"
            budget = budget_for(bench.secs if not self.messages else 120, self.conns)
            result, problem = stress(bench, relay.addr, self.args(bench.secs), budget, save)
            cpu1 = relay.cpu() if relay.alive() else None
            back1 = relay.backend_cpu()
        finally:
            relay.stop()
        r = {"problem": problem, "json": result}
        if result and cpu1 is not None and result.get("messages"):
            cpu = sum(cpu1) - sum(cpu0)
            r["cpu_s"] = cpu
            r["us_per_echo"] = cpu / result["messages"] * 1e6
            relayed = (result["bytes_sent"] + result["bytes_received"]) / GIB
            r["ms_per_gib"] = cpu / relayed * 1e3 if relayed else None
            others = result["machine_cpu_s"] - cpu - result["loadgen_cpu_s"] - (back1 - back0)
            r["others_busy"] = max(0.0, 100 * others / result["wall_s"])
            r["relay_busy"] = 100 * cpu / result["wall_s"]
        return r

    def said(self, r):
        j = r.get("json") or {}
        fig = r.get(self.figure)
        return (f"{j.get('messages_per_sec', 0):,.0f} echoes/s, {fig if fig is None else f'{fig:,.2f}'} "
                f"{self.unit}, relay core {r.get('relay_busy', 0):.0f} %, others {r.get('others_busy', 0):.0f} %")


def rows(s):
    rr = ("progjar", "haproxy")
    bulk = ("progjar", "haproxy-splice", "progjar-rw", "haproxy")
    return [
        Exchange("proxy-50x512", "50 conns × 512 B, request/response", 50, 512, rr, "haproxy",
                 "us_per_echo", "µs of relay CPU per relayed echo"),
        Exchange("proxy-1000x512", "1000 conns × 512 B, request/response", 1000, 512, rr, "haproxy",
                 "us_per_echo", "µs of relay CPU per relayed echo"),
        Exchange("proxy-bulk", f"1 conn, {s.bulk_mib} MiB each way, 16 × 64 KiB in flight", 1, 65536, bulk,
                 "haproxy-splice", "ms_per_gib", "ms of relay CPU per GiB relayed", pipeline=16,
                 messages=s.bulk_mib * 16),
    ]
