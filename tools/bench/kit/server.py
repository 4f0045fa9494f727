"""One server under test on 127.0.0.1:0, pinned to the server's core, and what /proc says
about it (CPU time, VmRSS, open descriptors), once or sampled while the load runs."""

import os
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Server:
    """progjar's server or the tokio peer, started fresh; `addr` is where it listens."""

    def __init__(self, bench, name, extra=(), log_level="warn", core=None, argv=None):
        """`core`: pin elsewhere than the server's core (a relay's backend sits beside the load
        generator); `argv`: another program that prints `listening on` (`progjar proxy`)."""
        self.bench, self.name = bench, name
        bench.work.mkdir(parents=True, exist_ok=True)
        out = bench.work / f"{name}.stdout"
        self.err_path = bench.work / f"{name}.stderr"
        if argv is not None:
            argv = list(argv)
        elif name == "progjar":
            # --max-connections above the idle run's 10050; logging at warn, since the
            # peer logs nothing (a log line per connection would be charged to progjar).
            argv = [bench.progjar, "server", "--bind", bench.host, "--port", "0", "--max-connections", "15000"]
            argv += list(extra)
        else:
            argv = [bench.peer, f"{bench.host}:0"]
        env = dict(bench.env, RUST_LOG=log_level)
        with open(out, "wb") as o, open(self.err_path, "wb") as e:
            # stdout to a file, not a pipe: a server that prints later never blocks or gets EPIPE.
            self.proc = bench.children.spawn(bench.pinned(core or bench.server_core, argv), stdout=o, stderr=e, env=env)
        self.pid = self.proc.pid  # taskset execs the server, so this is the server's pid
        deadline = time.monotonic() + 15
        self.addr = None
        while time.monotonic() < deadline:
            for line in out.read_text(errors="replace").splitlines():
                if line.startswith("listening on "):
                    self.addr = line.split()[-1]
            if self.addr or self.proc.poll() is not None:
                break
            time.sleep(0.02)
        if not self.addr:
            code = self.proc.poll()
            bench.children.stop(self.proc)
            raise RuntimeError(
                f"{name} did not print 'listening on' within 15 s (exit code {code}); "
                f"stderr: {self.stderr_tail()}"
            )

    def stderr_tail(self, n=400):
        try:
            return self.err_path.read_text(errors="replace")[-n:].strip() or "(empty)"
        except OSError:
            return "(none)"

    def alive(self):
        return self.proc.poll() is None

    def cpu(self):
        """(utime, stime) in seconds, all threads."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK

    def status(self, key):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])  # kB
        return 0

    def rss_kib(self):
        return self.status("VmRSS")

    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self):
        self.bench.children.stop(self.proc)


class Sampler(threading.Thread):
    """Samples (seconds, VmRSS KiB, open fds) of a server every `every` seconds."""

    def __init__(self, server, every):
        super().__init__(daemon=True)
        self.server, self.every = server, every
        self.samples = []
        self.done = threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        while not self.done.is_set():
            try:
                self.samples.append((time.monotonic() - self.t0, self.server.rss_kib(), self.server.fds()))
            except OSError:
                return
            self.done.wait(self.every)

    def finish(self):
        self.done.set()
        self.join(timeout=5)
        return self.samples


def machine_cpu():
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK, v[7] / CLK_TCK
