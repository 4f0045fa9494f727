"""What the TLS rows (modes/tls.py) start: the certificate, the three TLS servers (progjar's,
the tokio-rustls peer, and HAProxy terminating TLS in front of progjar's plaintext server), the
TLS load generator (tools/bench/peer's progjar-bench-tls-load), steered line by line, and
`openssl s_time`."""

import queue
import re
import resource
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from kit.server import CLK_TCK, Server

TLS_SERVERS = ("progjar", "tokio", "haproxy")


class Certificate:
    """`progjar cert` into TARGET/bench/tls-certs, made anew each run (valid for a year from
    today): an ECDSA P-256 server certificate signed by a CA, the same for every server."""

    def __init__(self, bench):
        d = bench.work / "tls-certs"
        if d.exists():
            shutil.rmtree(d)
        bench.work.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([bench.progjar, "cert", str(d)], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"progjar cert failed: {done.stderr.strip()[-300:]}")
        self.ca, self.cert, self.key = str(d / "ca.crt"), str(d / "server.crt"), str(d / "server.key")
        # HAProxy reads the certificate and its key from one file
        self.pem = d / "haproxy.pem"
        self.pem.write_text((d / "server.crt").read_text() + (d / "server.key").read_text())
        self.pem.chmod(0o600)


def peer_binary(bench, name, env_key):
    """A binary of tools/bench/peer (or the one `env_key` names); a plain error when missing."""
    path = Path(bench.env.get(env_key, str(bench.here / "target" / "release" / name)))
    if not path.exists():
        raise RuntimeError(f"{path} is missing; build it with: cargo build --release --manifest-path "
                           f"tools/bench/peer/Cargo.toml --target-dir tools/bench/target")
    return str(path)


def progjar_has_tls(bench):
    """Whether this progjar's server takes --tls-cert (the TLS server may not be built yet)."""
    try:
        out = subprocess.run([bench.progjar, "server", "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--tls-cert" in out.stdout + out.stderr


def free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening(host, port):
    """Whether /proc/net/tcp shows a socket listening on host:port: the readiness check needs
    no probe connection, which HAProxy would pass on and a TLS server log as a failed handshake."""
    want = "%08X:%04X" % (int.from_bytes(socket.inet_aton(host), "little"), port)
    with open("/proc/net/tcp") as f:
        return any(f"{want} " in line and line.split()[3] == "0A" for line in f)


class Started(Server):
    """A server that Server does not start itself (its own argv, on a port chosen here), with
    Server's readings of /proc. `argv_for(port)` is its command line."""

    def __init__(self, bench, name, argv_for, log_level="warn"):
        self.bench, self.name = bench, name
        self.err_path = bench.work / f"{name}.stderr"
        for _attempt in range(3):  # another program may take the free port first
            port = free_port(bench.host)
            env = dict(bench.env, RUST_LOG=log_level)
            with open(bench.work / f"{name}.stdout", "wb") as o, open(self.err_path, "wb") as e:
                self.proc = bench.children.spawn(bench.pinned(bench.server_core, argv_for(port)),
                                                 stdout=o, stderr=e, env=env)
            self.pid = self.proc.pid  # taskset execs the server
            self.addr = f"{bench.host}:{port}"
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.proc.poll() is None:
                if listening(bench.host, port):
                    return
                time.sleep(0.02)
            code = self.proc.poll()
            bench.children.stop(self.proc)
        raise RuntimeError(f"{name} was not listening within 15 s (exit code {code}); stderr: {self.stderr_tail()}")


HAPROXY_CFG = """# tools/bench/run tls: HAProxy terminating TLS in front of progjar's plaintext server
global
    nbthread 1
    maxconn {maxconn}
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend tls
    bind {addr} ssl crt {pem}
    default_backend echo
backend echo
    server progjar {backend}
"""


class Fronted:
    """HAProxy (one thread) terminating TLS in front of progjar's plaintext server, both on
    the server's core: what a user would otherwise deploy. CPU and memory are the two
    processes' together; `parts` names them one by one."""

    def __init__(self, bench, cert):
        self.name = "haproxy"
        self.backend = Server(bench, "progjar")
        try:
            cfg = bench.work / "haproxy.cfg"

            def argv(port):
                # HAProxy needs two descriptors a connection (client and backend) and refuses
                # to start with a maxconn the open-file limit cannot hold
                maxconn = min(15000, (bench.nofile_hard - 200) // 2)
                cfg.write_text(HAPROXY_CFG.format(addr=f"{bench.host}:{port}", pem=cert.pem,
                                                  backend=self.backend.addr, maxconn=maxconn))
                return ["haproxy", "-db", "-f", str(cfg)]

            self.front = Started(bench, "haproxy", argv)
        except BaseException:
            self.backend.stop()
            raise
        self.addr, self.pid = self.front.addr, self.front.pid

    def cpu(self):
        (u1, s1), (u2, s2) = self.front.cpu(), self.backend.cpu()
        return u1 + u2, s1 + s2

    def rss_kib(self):
        return self.front.rss_kib() + self.backend.rss_kib()

    def parts(self):
        return {"haproxy": self.front.rss_kib(), "backend": self.backend.rss_kib()}

    def alive(self):
        return self.front.alive() and self.backend.alive()

    def stderr_tail(self):
        return f"haproxy: {self.front.stderr_tail()}; backend: {self.backend.stderr_tail()}"

    def stop(self):
        self.front.stop()
        self.backend.stop()


def start(bench, name, cert):
    """A fresh TLS server of `name` (one of TLS_SERVERS) on the server's core."""
    if name == "progjar":
        return Server(bench, "progjar", extra=["--tls-cert", cert.cert, "--tls-key", cert.key])
    if name == "tokio":
        tls_peer = peer_binary(bench, "progjar-bench-tls-peer", "PEER_TLS_BIN")
        return Started(bench, "tokio-tls", lambda port: [tls_peer, f"{bench.host}:{port}", cert.cert, cert.key])
    return Fronted(bench, cert)


def plaintext(bench):
    """progjar's plaintext server, for the bulk row's plaintext figure."""
    return Server(bench, "progjar")


def proc_cpu(pid):
    """utime+stime seconds of a process, all threads (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return 0.0


class Load:
    """progjar-bench-tls-load on the load core. It prints `ready`, waits for a line, runs,
    prints `stopped JSON`, waits for a line and closes: `expect` and `go` follow it, so that
    the bench reads the server's CPU and memory exactly around the measured part."""

    def __init__(self, bench, mode, addr, ca, args):
        gen = peer_binary(bench, "progjar-bench-tls-load", "TLS_LOAD_BIN")
        argv = bench.pinned(bench.load_core, [gen, mode, addr, "--ca", ca] + args)
        self.err_path = bench.work / f"tls-load-{mode}.stderr"
        with open(self.err_path, "wb") as e:
            # stdin is a pipe (the steering), so not Children.spawn; remembered there all the same
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=e,
                                         start_new_session=True)
        bench.children.live.append(self.proc)
        self.children = bench.children
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.decode(errors="replace").strip())
        self.lines.put(None)

    def expect(self, word, timeout):
        """The rest of the next line starting with `word`; RuntimeError on its end or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"the TLS load generator said no {word!r} within {timeout:.0f} s") from None
            if line is None:
                tail = self.err_path.read_text(errors="replace")[-300:].strip()
                raise RuntimeError(f"the TLS load generator ended before {word!r} (exit {self.proc.poll()}): {tail}")
            if line.startswith(word):
                return line[len(word):].strip()

    def go(self):
        self.proc.stdin.write(b"\n")
        self.proc.stdin.flush()

    def cpu(self):
        return proc_cpu(self.proc.pid)

    def finish(self, timeout=30):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.children.stop(self.proc)


def negotiated_by_openssl(addr, ca):
    """What `openssl s_client` (so `s_time`, with the same defaults) negotiates: one handshake."""
    try:
        out = subprocess.run(["openssl", "s_client", "-connect", addr, "-CAfile", ca, "-brief"],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = out.stdout + out.stderr
    version = re.search(r"Protocol version: (\S+)", text)
    suite = re.search(r"Ciphersuite: (\S+)", text)
    group = re.search(r"(?:Negotiated TLS1.3 group|Server Temp Key): ([^,\n]+)", text)
    return ", ".join(m.group(1).strip() if m else "?" for m in (version, suite, group))


def s_time(bench, addr, secs):
    """`openssl s_time -new` on the load core for `secs`: full handshakes only (no echo: s_time
    cannot), the issue's reference measurement. Returns (connections, error text)."""
    argv = bench.pinned(bench.load_core, ["openssl", "s_time", "-connect", addr, "-new", "-time", str(int(secs))])
    p = bench.children.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=secs + 60)
    except subprocess.TimeoutExpired:
        bench.children.stop(p)
        return None, "openssl s_time still running; stopped"
    bench.children.forget(p)
    m = re.search(r"(\d+) connections in [\d.]+s", out.decode(errors="replace"))
    if p.returncode != 0 or not m:
        return None, f"openssl s_time exit {p.returncode}: {(out + err).decode(errors='replace')[-300:]}"
    return int(m.group(1)), ""


def rusage_children_cpu():
    """CPU seconds of this script's reaped children (s_time, once it is waited for)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime
