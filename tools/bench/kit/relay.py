"""A relay under test on 127.0.0.1, pinned to the server's core, in front of a fresh progjar
echo server pinned to the load core beside the load generator: `progjar proxy` (splicing busy
directions, or with --no-splice) or Debian's HAProxy (`nbthread 1`, TCP mode, with or without
splice). Its CPU time and VmRSS come from /proc like a server's."""

import socket
import time

from kit.server import CLK_TCK, Server

# Every relay a row may run, and what it is: a word of the tables.
RELAYS = {
    "progjar": "progjar proxy (busy directions by splice)",
    "progjar-rw": "progjar proxy --no-splice (read/write)",
    "haproxy": "HAProxy, nbthread 1, TCP mode (read/write)",
    "haproxy-splice": "HAProxy with `option splice-request` and `splice-response`",
}

HAPROXY_CFG = """# written by tools/bench/kit/relay.py for one run
global
    nbthread 1
    maxconn {maxconn}
defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
{splice}
frontend relay
    bind {host}:{port}
    default_backend echo
backend echo
    server progjar {backend}
"""
SPLICE = "    option splice-request\n    option splice-response"


def free_port(host):
    """A port nothing listens on now (HAProxy has no `port 0` that it then prints)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def haproxy_maxconn(bench, conns, splice):
    """Connections HAProxy may take: enough for the row, within the open-file limit (it wants
    two descriptors a connection, and with splice a pipe, two more, for a quarter of them)."""
    per_conn = 2.5 if splice else 2
    return max(16, min(conns + 100, int((bench.nofile_hard - 200) / per_conn)))


class Relay:
    """`name` (one of RELAYS) in front of its own echo server; `addr` is where clients go."""

    def __init__(self, bench, name, conns, extra=()):
        self.bench, self.name = bench, name
        argv = [bench.progjar, "server", "--bind", bench.host, "--port", "0", "--max-connections", str(conns + 100)]
        self.backend = Server(bench, "relay-backend", argv=argv, core=bench.load_core)
        try:
            if name.startswith("progjar"):
                argv = [bench.progjar, "proxy", "--bind", bench.host, "--port", "0", "--to", self.backend.addr,
                        "--max-connections", str(conns + 100)] + (["--no-splice"] if name == "progjar-rw" else [])
                self.relay = Server(bench, f"relay-{name}", argv=argv + list(extra))
                self.proc, self.addr = self.relay.proc, self.relay.addr
            else:
                self.start_haproxy(conns, name == "haproxy-splice")
        except BaseException:
            self.backend.stop()
            raise
        self.pid = self.proc.pid

    def start_haproxy(self, conns, splice):
        bench = self.bench
        port = free_port(bench.host)
        cfg = bench.work / "haproxy.cfg"
        cfg.write_text(HAPROXY_CFG.format(maxconn=haproxy_maxconn(bench, conns, splice), host=bench.host,
                                          port=port, backend=self.backend.addr, splice=SPLICE if splice else ""))
        err = bench.work / f"relay-{self.name}.stderr"
        with open(err, "wb") as e:
            self.proc = bench.children.spawn(bench.pinned(bench.server_core, ["haproxy", "-db", "-f", str(cfg)]),
                                             stdout=e, stderr=e)
        self.relay = None
        self.addr = f"{bench.host}:{port}"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection((bench.host, port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        code = self.proc.poll()
        bench.children.stop(self.proc)
        raise RuntimeError(f"haproxy did not listen within 15 s (exit {code}): "
                           f"{err.read_text(errors='replace')[-400:].strip()}")

    def alive(self):
        return self.proc.poll() is None

    def cpu(self):
        """The relay's (utime, stime) in seconds."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def backend_cpu(self):
        return sum(self.backend.cpu())

    def stop(self):
        self.bench.children.stop(self.proc)
        self.backend.stop()
