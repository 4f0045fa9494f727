"""The proxy's many-clients row: BENCH_PROXY_MANY relayed clients at once, 512 B
request/response, opened at BENCH_PROXY_CONNECT_RATE a second, every byte checked by
progjar-stress: the goal is zero errors.

One relayed client is two sockets in the proxy, so 10,000 are 20,000 descriptors in the proxy
alone: more than an open-file hard limit of 20,000 leaves once the process's own are counted,
and raising a hard limit takes CAP_SYS_RESOURCE. The row then splits the clients evenly over as
many proxy processes as the limit needs (each one loop, all on the relay's core, in front of one
echo server), each driven by its own progjar-stress, and merges their summaries with
`progjar-stress merge`: every connection and every byte of all of them is checked. The table
says how many processes it took."""

import json
import math
import subprocess
import time

from kit.server import Server
from kit.stress import IDLE_EXTRA_SECS, secs_arg

# Descriptors a proxy keeps for itself (tools, the log, the listener) and its pipes (pipe.rs).
OWN_FDS, PIPE_FDS = 64, 512


def processes(bench, n):
    """How many proxy processes `n` relayed clients need under the open-file hard limit."""
    per_process = max(1, (bench.nofile_hard - OWN_FDS - PIPE_FDS) // 2)
    return math.ceil(n / per_process)


class Many:
    key, figure, unit, digits = "proxy-many", "errors", "errors", 0
    relays, ref, goal = ("progjar",), None, "0 errors, every client served"

    def __init__(self, n, rate):
        self.n, self.rate, self.conns = n, rate, n
        self.label = f"{n:,} relayed clients at once, 512 B request/response, every byte checked"

    def met(self, ours, _ratio):
        return ours == 0

    def measure(self, bench, _name, rnd):
        procs = processes(bench, self.n)
        share = math.ceil(self.n / procs)
        argv = [bench.progjar, "server", "--bind", bench.host, "--port", "0", "--max-connections", str(self.n + 100)]
        backend = Server(bench, "many-backend", argv=argv, core=bench.load_core)
        proxies, loads = [], []
        try:
            for i in range(procs):
                argv = [bench.progjar, "proxy", "--bind", bench.host, "--port", "0", "--to", backend.addr,
                        "--max-connections", str(share + 10)]
                proxies.append(Server(bench, f"many-proxy{i + 1}", argv=argv))
            secs = bench.secs + self.n / self.rate + IDLE_EXTRA_SECS
            files = [bench.work / f"proxy-many-{i + 1}-round{rnd}.json" for i in range(procs)]
            for proxy, out in zip(proxies, files):
                args = [proxy.addr, "-c", str(share), "-s", "512", "-d", secs_arg(secs),
                        "--connect-rate", str(max(1, self.rate // procs)), "--json"]
                with open(out, "wb") as f:
                    loads.append(bench.children.spawn(bench.pinned(bench.load_core, [bench.stress] + args),
                                                      stdout=f, stderr=subprocess.DEVNULL))
            deadline = time.monotonic() + secs + 120
            for p in loads:
                p.wait(timeout=max(1, deadline - time.monotonic()))
                bench.children.forget(p)
            alive = all(p.alive() for p in proxies)
        finally:
            for p in loads:
                bench.children.stop(p)
            for p in proxies:
                p.stop()
            backend.stop()
        merged = subprocess.run([bench.stress, "merge", "--json"] + [str(f) for f in files],
                                capture_output=True, text=True, timeout=120)
        try:
            j = json.loads(merged.stdout)
        except json.JSONDecodeError:
            return {"problem": f"merge: {merged.stderr.strip()[-300:]}", "procs": procs}
        problem = "" if j.get("ok") and alive else f"{j.get('result')}: {j.get('errors')}; proxies alive: {alive}"
        return {"json": j, "problem": problem, "procs": procs, "errors": j.get("error_count"),
                "clients": j.get("connections_ok")}

    def said(self, r):
        j = r.get("json") or {}
        return (f"{r.get('procs')} proxy process(es): {j.get('connections_ok')} clients served, "
                f"{j.get('messages', 0):,} echoes, {r.get('errors')} errors, {j.get('result')}")


def rows(s):
    return [Many(s.many, s.connect_rate)]
