"""The TLS rows (`tools/bench/run tls`; `make bench` runs them after the matrix): progjar's
TLS server (`progjar server --tls-cert FILE --tls-key FILE`) beside a tokio + tokio-rustls
peer with the same provider (aws-lc-rs) and HAProxy terminating TLS in front of progjar's
plaintext server, in one run, a fresh server for each:

- echo: server CPU per echo over established connections, 50 and 1000 × 512 B (target:
  progjar ≤ 1.05× the tokio peer); the handshakes come before the measured part;
- handshakes: connect, a full TLS 1.3 handshake, one 64 B echo, close: server CPU per
  transaction (HAProxy's plus its backend's) and handshakes per second per core, with the
  load generator's default key exchange, with X25519 forced, and with `openssl s_time -new`
  (handshakes only, the issue's reference) (targets: progjar ≤ 185 µs and ≤ 0.8× HAProxy);
- idle: VmRSS per idle TLS connection after its handshake and one echo, over
  BENCH_TLS_IDLE connections, minus the same with none (target ≤ 4.5 KB and ≤ ¼ HAProxy's);
- bulk: 1 GiB through one TLS connection (`progjar client --tls --file`), MiB/s, beside the
  same file through the plaintext server.

The load is progjar-bench-tls-load (tools/bench/peer; why it: its doc comment) on the load
core, the servers (HAProxy and its backend both) on the server core, as in the matrix."""

import json
import statistics
import subprocess
import time

from kit.bench import log
from kit.quiet import Quiet
from kit.figures import get, value
from kit.report import MIB, fmt_int, fmt_ratio, loadavg, machine, mib_per_s, table, write
from kit.server import machine_cpu
from kit.stress import secs_arg
from kit.tls import (TLS_SERVERS, Certificate, Load, negotiated_by_openssl, peer_binary, plaintext,
                     progjar_has_tls, rusage_children_cpu, s_time, start)
from modes.file import random_file

USAGE = """tls              the TLS rows: progjar's TLS server against a tokio-rustls peer and
                                   HAProxy (echo CPU, full handshakes, idle memory, 1 GiB bulk)"""
ENV = """  BENCH_TLS_SERVERS=progjar,tokio,haproxy   the TLS rows' servers (progjar's are left out,
                         with a note, while its server has no --tls-cert)
  BENCH_TLS_IDLE=3000    idle TLS connections in the idle row
  BENCH_TLS_CRR=50       connections at once in the handshake rows
  PEER_TLS_BIN, TLS_LOAD_BIN   the TLS peer and load generator instead of the built ones
  BENCH_ONLY=tlshs,tlsidle   some TLS rows only (tls50x512 tls1000x512 tlshs tlshs-x25519
                         tlshs-stime tlsidle tlsbulk), into TARGET/bench/tls-partial.md"""

ECHO = (("tls50x512", 50, 512), ("tls1000x512", 1000, 512))
# (key, the load generator's --groups, or None: openssl s_time -new)
HANDSHAKES = (("tlshs", "default"), ("tlshs-x25519", "x25519"), ("tlshs-stime", None))
KEYS = [k for k, *_ in ECHO] + [k for k, _ in HANDSHAKES] + ["tlsidle", "tlsbulk"]
ROW_SERVERS = {"echo": ("progjar", "tokio"), "hs": TLS_SERVERS, "idle": TLS_SERVERS,
               "bulk": TLS_SERVERS + ("plaintext",)}

TARGET_ECHO = 1.05  # progjar ÷ tokio, server CPU per echo
TARGET_HS_US = 185  # 0.8 × the 230 µs for HAProxy
TARGET_HS = 0.8  # progjar ÷ HAProxy, server CPU per transaction
TARGET_IDLE_BYTES = 4500  # 4.5 KB: ¼ of the 17.9 KB for HAProxy
TARGET_IDLE = 0.25


class Settings:
    def __init__(self, env):
        self.servers = [s for s in env.get("BENCH_TLS_SERVERS", ",".join(TLS_SERVERS)).split(",") if s]
        for s in self.servers:
            if s not in TLS_SERVERS:
                raise RuntimeError(f"BENCH_TLS_SERVERS: unknown server {s!r} ({', '.join(TLS_SERVERS)})")
        self.idle = int(env.get("BENCH_TLS_IDLE", "3000"))
        self.crr = int(env.get("BENCH_TLS_CRR", "50"))
        self.file_mib = int(env.get("BENCH_FILE_MIB", "1024"))


def settings(env):
    return Settings(env)


# ---------------------------------------------------------------- one run


def busy(r, server_s, load_s, machine_s, wall):
    """Each core's share over the measured part, and what the rest of the machine took."""
    r["server_busy"] = 100 * server_s / wall
    r["loadgen_busy"] = 100 * load_s / wall
    r["others_busy"] = max(0.0, 100 * (machine_s - server_s - load_s) / wall)


def steered(bench, server, cert, mode, args, budget, at_ready=None):
    """The load generator in `mode` against `server`: CPU read around the measured part
    (after `ready`, until `stopped`), `at_ready(r)` called with every connection up."""
    r = {"problem": ""}
    load = Load(bench, mode, server.addr, cert.ca, args)
    try:
        load.expect("ready", budget)
        if at_ready:
            at_ready(r)
        c0, l0, m0, t0 = server.cpu(), load.cpu(), machine_cpu()[0], time.monotonic()
        load.go()
        j = json.loads(load.expect("stopped", budget))
        c1, l1, m1, t1 = server.cpu(), load.cpu(), machine_cpu()[0], time.monotonic()
        load.go()
    finally:
        load.finish()
    r["json"] = j
    if not j.get("ok"):
        r["problem"] = f"{j.get('error_count')} errors: {'; '.join(j.get('errors') or [])}"
    user, sys_ = c1[0] - c0[0], c1[1] - c0[1]
    r["cpu_s"], r["user_s"] = user + sys_, user
    if mode != "idle":
        busy(r, user + sys_, l1 - l0, m1 - m0, t1 - t0)
    return r


def per_message(r, key, unit):
    """CPU per message (echo or transaction) in `unit` seconds, and its user-space part."""
    n = (r.get("json") or {}).get("messages")
    if n and "cpu_s" in r:
        r[key] = r["cpu_s"] / n / unit
        r["user_" + key] = r["user_s"] / n / unit


def run_echo(bench, s, cert, name, conns, size):
    server = start(bench, name, cert)
    try:
        time.sleep(0.2)
        args = ["-c", str(conns), "-s", str(size), "-d", secs_arg(bench.secs)]
        r = steered(bench, server, cert, "echo", args, bench.secs + 60 + conns / 50)
    finally:
        server.stop()
    per_message(r, "ns_per_echo", 1e-9)
    return r


def run_handshakes(bench, s, cert, name, groups):
    server = start(bench, name, cert)
    try:
        time.sleep(0.2)
        if groups is not None:
            args = ["-c", str(s.crr), "-s", "64", "-d", secs_arg(bench.secs), "--groups", groups]
            r = steered(bench, server, cert, "crr", args, bench.secs + 60)
        else:
            r = timed_s_time(bench, server, cert)
    finally:
        server.stop()
    per_message(r, "us_per_tx", 1e-6)
    if r.get("us_per_tx"):
        r["per_core"] = 1e6 / r["us_per_tx"]
    return r


def timed_s_time(bench, server, cert):
    """`openssl s_time -new`, the server's CPU read around it; its one s_client handshake
    before says what OpenSSL negotiates."""
    said = negotiated_by_openssl(server.addr, cert.ca)
    c0, m0, t0 = server.cpu(), machine_cpu()[0], time.monotonic()
    ru0 = rusage_children_cpu()
    n, problem = s_time(bench, server.addr, bench.secs)
    c1, m1, t1, ru1 = server.cpu(), machine_cpu()[0], time.monotonic(), rusage_children_cpu()
    user, sys_ = c1[0] - c0[0], c1[1] - c0[1]
    r = {"problem": problem, "cpu_s": user + sys_, "user_s": user,
         "json": {"messages": n, "messages_per_sec": n / (t1 - t0) if n else None, "negotiated": said, "ok": bool(n)}}
    busy(r, user + sys_, ru1 - ru0, m1 - m0, t1 - t0)
    return r


def run_idle(bench, s, cert, name):
    server = start(bench, name, cert)
    try:
        time.sleep(0.2)
        before = server.rss_kib()
        parts0 = server.parts() if hasattr(server, "parts") else {}

        def at_ready(r):
            time.sleep(0.5)  # what the last handshakes left to free is freed by now
            r["rss_before_kib"], r["rss_after_kib"] = before, server.rss_kib()
            for part, kib in (server.parts() if parts0 else {}).items():
                r[f"{part}_bytes_per_idle"] = (kib - parts0[part]) * 1024 / s.idle

        r = steered(bench, server, cert, "idle", ["-c", str(s.idle), "-s", "64"], 60 + s.idle / 50, at_ready)
    finally:
        server.stop()
    held = (r.get("json") or {}).get("held")
    if held and "rss_after_kib" in r:
        r["bytes_per_idle"] = (r["rss_after_kib"] - r["rss_before_kib"]) * 1024 / held
        if held != s.idle:
            r["note"] = f"{name} held {held} of {s.idle} idle connections; bytes per idle connection divide by that"
    return r


def run_bulk(bench, s, cert, name, path):
    """`progjar client --file` of the random file through one connection: TLS for the three
    TLS servers (the certificate checked), plaintext for `plaintext`."""
    server = plaintext(bench) if name == "plaintext" else start(bench, name, cert)
    try:
        time.sleep(0.2)
        tls = [] if name == "plaintext" else ["--tls", "--ca", cert.ca]
        argv = bench.pinned(bench.load_core, [bench.progjar, "client", server.addr, *tls, "--file", str(path)])
        c0, l0, m0, t0 = server.cpu(), rusage_children_cpu(), machine_cpu()[0], time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        c1, l1, m1, t1 = server.cpu(), rusage_children_cpu(), machine_cpu()[0], time.monotonic()
    finally:
        server.stop()
    line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or "identical" not in line:
        return {"problem": f"progjar client exit {done.returncode}: {line} {done.stderr.strip()[-300:]}"}
    r = {"problem": "", "mib_per_s": mib_per_s(s.file_mib * MIB, t1 - t0)}
    busy(r, sum(c1) - sum(c0), l1 - l0, m1 - m0, t1 - t0)
    return r


# ---------------------------------------------------------------- the rounds


def plan(bench, s):
    """(key, kind, servers, how to run one) of every row asked for."""
    keys = [k for k in KEYS if k in bench.only] or KEYS
    rows = []
    for key, conns, size in ECHO:
        rows.append((key, "echo", lambda c, n, conns=conns, size=size: run_echo(bench, s, c, n, conns, size)))
    for key, groups in HANDSHAKES:
        rows.append((key, "hs", lambda c, n, groups=groups: run_handshakes(bench, s, c, n, groups)))
    rows.append(("tlsidle", "idle", lambda c, n: run_idle(bench, s, c, n)))
    if "tlsbulk" in keys:
        path = random_file(bench, s.file_mib)
        rows.append(("tlsbulk", "bulk", lambda c, n: run_bulk(bench, s, c, n, path)))
    return [r for r in rows if r[0] in keys]


def servers_for(s, kind, have_progjar):
    return [n for n in ROW_SERVERS[kind]
            if (n in s.servers or n == "plaintext") and (have_progjar or n != "progjar")]


def once(bench, quiet, how, cert, name):
    """One run, repeated once when the machine was busy; the quieter attempt counts."""
    r = None
    for _attempt in range(2):
        quiet.wait()
        try:
            a = how(cert, name)
        except (RuntimeError, ValueError, OSError, subprocess.SubprocessError) as e:
            a = {"problem": str(e)}
        if r is None or a.get("others_busy", 1e9) < r.get("others_busy", 1e9):
            r = a
        if not quiet.again(a):
            break
    return r


def said(r):
    j = r.get("json") or {}
    bits = [f"{k} {fmt_int(r.get(k))}" for k in ("ns_per_echo", "us_per_tx", "bytes_per_idle", "mib_per_s") if r.get(k)]
    if j.get("messages_per_sec"):
        bits.append(f"{fmt_int(j['messages_per_sec'])}/s")
    if j.get("negotiated"):
        bits.append(j["negotiated"])
    if "server_busy" in r:
        bits.append(f"server core {fmt_int(r['server_busy'])} %, load core {fmt_int(r['loadgen_busy'])} %, "
                    f"others {fmt_int(r['others_busy'])} %")
    return "    " + ", ".join(bits) + (f"  PROBLEM: {r['problem']}" if r.get("problem") else "")


def run(bench, s, _which):
    have_progjar = "progjar" in s.servers and progjar_has_tls(bench)
    if "progjar" in s.servers and not have_progjar:
        log("[tls] this progjar's server has no --tls-cert yet: progjar's TLS rows are left out")
    peer_binary(bench, "progjar-bench-tls-load", "TLS_LOAD_BIN")  # before anything starts
    cert = Certificate(bench)
    rows = plan(bench, s)
    quiet, results, t0, load0 = Quiet(bench), {}, time.monotonic(), loadavg()
    for rnd in range(1, bench.rounds + 1):
        for key, kind, how in rows:
            names = servers_for(s, kind, have_progjar)
            for name in names if rnd % 2 else names[::-1]:  # alternate, so that drift favours none
                log(f"[tls] round {rnd}, {name}: {key}")
                r = once(bench, quiet, how, cert, name)
                results.setdefault((key, name), []).append(r)
                log(said(r))
    elapsed = time.monotonic() - t0
    partial = len(rows) < len(KEYS) or set(s.servers) != set(TLS_SERVERS) or not have_progjar
    ctx = {"have_progjar": have_progjar, "elapsed": elapsed, "load": (load0, loadavg()), "quiet": quiet}
    out = write(bench, "tls-partial.md" if partial else "tls.md", report(bench, s, results, ctx))
    log(f"written to {bench.shown(out)}; took {elapsed / 60:.1f} min")
    if not partial:
        log(f"to make it the committed table: cp {bench.shown(out)} {bench.shown(bench.here / 'tls.md')}")
    measured = all(not r.get("problem") for rs in results.values() for r in rs)
    return 0 if measured else 1


# ---------------------------------------------------------------- the report


def ratio(results, key, a, b, *path):
    """a ÷ b: the median of each round's ratio (the servers of a round ran one after another)."""
    pairs = zip(results.get((key, a), []), results.get((key, b), []))
    rs = [value(x, path) / value(y, path) for x, y in pairs if value(x, path) is not None and value(y, path)]
    return statistics.median(rs) if rs else None


def words(results, key, name):
    """What the key exchange came to, as the runs said it (they agree, or each is listed)."""
    seen = sorted({(r.get("json") or {}).get("negotiated") for r in results.get((key, name), [])} - {None})
    return "; ".join(seen) or "n/a"


def report(bench, s, results, ctx):
    m = machine()
    q = ctx["quiet"]
    L = [
        "## TLS: progjar's TLS server, a tokio-rustls peer and HAProxy",
        "",
        f"Run on {m['date']}: {m['nproc']} × {m['cpu']} (`nproc` {m['nproc']}), {m['mem']}, Linux {m['kernel']}, "
        f"{m['rustc']}; loopback 127.0.0.1. Servers (HAProxy and its backend both) pinned to core "
        f"{bench.server_core}, the load (progjar-bench-tls-load, `openssl s_time`, `progjar client`) to core "
        f"{bench.load_core}.",
        "",
        f"Command: `tools/bench/run tls` (BENCH_SECS={secs_arg(bench.secs)}, BENCH_ROUNDS={bench.rounds}, "
        f"BENCH_TLS_IDLE={s.idle}, BENCH_TLS_CRR={s.crr}, BENCH_FILE_MIB={s.file_mib}); took "
        f"{ctx['elapsed'] / 60:.1f} min; load average {ctx['load'][0]} before, {ctx['load'][1]} after; waited "
        f"{q.waited:.0f} s for a quiet machine, repeated {q.repeated} busy runs. Every figure is the median of "
        "the rounds, every ratio the median of the rounds' ratios. TLS 1.3 everywhere, one ECDSA P-256 "
        "certificate from `progjar cert`, no session resumption.",
        "",
    ]
    if not ctx["have_progjar"]:
        L += ["**progjar's TLS rows were not run**: this progjar's server has no `--tls-cert` yet.", ""]
    L += echo_section(results) + handshake_section(results) + idle_section(s, results) + bulk_section(s, results)
    L += targets_section(results)
    problems = [f"- {n}, {k}, round {i + 1}: {r[f]}" for (k, n), rs in results.items()
                for i, r in enumerate(rs) for f in ("problem", "note") if r.get(f)]
    L += (["", "### Errors and notes", ""] + problems) if problems else []
    return "\n".join(L + [""])


def echo_section(results):
    rows = []
    for key, conns, size in ECHO:
        if not any((key, n) in results for n in ("progjar", "tokio")):
            continue
        row = [f"{conns} conns, {size} B"]
        for path in (("json", "messages_per_sec"), ("json", "latency_us", "p99"), ("ns_per_echo",),
                     ("user_ns_per_echo",), ("server_busy",), ("loadgen_busy",)):
            row += [fmt_int(get(results, key, n, *path)) for n in ("progjar", "tokio")]
            if path == ("ns_per_echo",):
                row.append(fmt_ratio(ratio(results, key, "progjar", "tokio", "ns_per_echo")))
        rows.append(row)
    cols = ["run", "echoes/s progjar", "echoes/s tokio", "p99 µs progjar", "p99 µs tokio",
            "server CPU ns/echo progjar", "server CPU ns/echo tokio", "ratio", "user ns/echo progjar",
            "user ns/echo tokio", "server core % progjar", "server core % tokio", "load core % progjar",
            "load core % tokio"]
    intro = ["### Echo over established TLS connections", "",
             "Request/response, every connection handshaken before the measured part. The peer is "
             "`tools/bench/peer`'s progjar-bench-tls-peer: tokio current-thread, tokio-rustls, a task "
             "per connection, a 64 KiB buffer, `write_all` and `flush`.", ""]
    return intro + table(cols, rows) + [""] if rows else []


def handshake_section(results):
    names = ("progjar", "haproxy", "tokio")
    labels = {"tlshs": "connect + handshake + 64 B echo + close, default key exchange",
              "tlshs-x25519": "the same, X25519 forced",
              "tlshs-stime": "`openssl s_time -new` (handshake only, OpenSSL's defaults)"}
    keys = [k for k, _g in HANDSHAKES if any((k, n) in results for n in names)]
    if not keys:
        return []
    rows, said = [], []
    for key in keys:
        row = [labels[key]] + [fmt_int(get(results, key, n, "us_per_tx")) for n in names[:2]]
        row.append(fmt_ratio(ratio(results, key, "progjar", "haproxy", "us_per_tx")))
        row.append(fmt_int(get(results, key, "tokio", "us_per_tx")))
        for path in (("per_core",), ("json", "messages_per_sec"), ("server_busy",)):
            row += [fmt_int(get(results, key, n, *path)) for n in names]
        rows.append(row)
        said.append([labels[key]] + [words(results, key, n) for n in names])
    cols = ["run", "server CPU µs/transaction progjar", "haproxy", "progjar ÷ haproxy", "tokio"]
    for title in ("handshakes/s per core", "transactions/s", "server core %"):
        cols += [f"{title} {n}" for n in names]
    intro = ["### Full handshakes", "",
             "Server CPU per transaction: utime+stime of the server (for haproxy: HAProxy, one thread, plus "
             "the plaintext progjar server behind it) over the run ÷ the transactions; handshakes/s per core "
             "is its inverse. The load generator keeps BENCH_TLS_CRR transactions going at once; "
             "`openssl s_time` one after another. Transactions/s is what the pair reached (the load "
             "generator's own core is often the limit), CPU per transaction is the server's own.", ""]
    what = ["", "What each handshake negotiated (version, cipher suite, key exchange):", ""]
    return intro + table(cols, rows) + what + table(["run"] + list(names), said) + [""]


def idle_section(s, results):
    key, names = "tlsidle", ("progjar", "haproxy", "tokio")
    if not any((key, n) in results for n in names):
        return []
    rows = [
        [f"bytes of VmRSS per idle TLS connection ({s.idle})"] + [fmt_int(get(results, key, n, "bytes_per_idle"))
                                                                  for n in names]
        + [fmt_ratio(ratio(results, key, "progjar", "haproxy", "bytes_per_idle"))],
        ["of which HAProxy's own / its backend's", "", f"{fmt_int(get(results, key, 'haproxy', 'haproxy_bytes_per_idle'))}"
         f" / {fmt_int(get(results, key, 'haproxy', 'backend_bytes_per_idle'))}", "", ""],
        ["VmRSS KiB before"] + [fmt_int(get(results, key, n, "rss_before_kib")) for n in names] + [""],
        [f"VmRSS KiB with {s.idle} idle"] + [fmt_int(get(results, key, n, "rss_after_kib")) for n in names] + [""],
    ]
    intro = ["### Memory per idle TLS connection", "",
             f"VmRSS with {s.idle} connections open, each after its handshake and one 64 B echo, minus VmRSS "
             "before the first, ÷ the connections (HAProxy's and its backend's together).", ""]
    return intro + table(["figure"] + list(names) + ["progjar ÷ haproxy"], rows) + [""]


def bulk_section(s, results):
    key, names = "tlsbulk", ("progjar", "haproxy", "tokio", "plaintext")
    if not any((key, n) in results for n in names):
        return []
    rows = [[n if n != "plaintext" else "progjar, plaintext (no TLS)",
             fmt_int(get(results, key, n, "mib_per_s")),
             fmt_ratio(ratio(results, key, n, "plaintext", "mib_per_s")) if n != "plaintext" else "",
             fmt_int(get(results, key, n, "server_busy")), fmt_int(get(results, key, n, "loadgen_busy"))]
            for n in names if (key, n) in results]
    intro = ["### Bulk: one connection, 1 GiB", "",
             f"`progjar client 127.0.0.1:PORT --tls --ca ca.crt --file F` of a {s.file_mib} MiB random file "
             "(every byte compared), MiB/s over the client's whole run; the plaintext row is the same "
             "client without TLS through progjar's plaintext server. The client's two threads (a writer "
             "and a reader) share the load core.", ""]
    return intro + table(["server", "MiB/s", "÷ plaintext", "server core %", "client core %"], rows) + [""]


def targets_section(results):
    out = ["### Targets", "", "| target | progjar | reference | ratio | needed | result |", "|---|--:|--:|--:|---|---|"]
    for key, conns, size in ECHO:
        q = ratio(results, key, "progjar", "tokio", "ns_per_echo")
        out.append(verdict(f"server CPU ns/echo, {conns} conns × {size} B, vs tokio",
                           get(results, key, "progjar", "ns_per_echo"), get(results, key, "tokio", "ns_per_echo"),
                           q, f"ratio ≤ {TARGET_ECHO}", q is not None and q <= TARGET_ECHO))
    for key, _g in HANDSHAKES:
        p, q = get(results, key, "progjar", "us_per_tx"), ratio(results, key, "progjar", "haproxy", "us_per_tx")
        out.append(verdict(f"server CPU µs/transaction, {key}, vs HAProxy", p, get(results, key, "haproxy", "us_per_tx"),
                           q, f"≤ {TARGET_HS_US} µs and ratio ≤ {TARGET_HS}",
                           p is not None and p <= TARGET_HS_US and q is not None and q <= TARGET_HS))
    p, q = get(results, "tlsidle", "progjar", "bytes_per_idle"), ratio(results, "tlsidle", "progjar", "haproxy",
                                                                        "bytes_per_idle")
    out.append(verdict("bytes per idle TLS connection, vs HAProxy", p, get(results, "tlsidle", "haproxy", "bytes_per_idle"),
                       q, f"≤ {TARGET_IDLE_BYTES:,} and ratio ≤ {TARGET_IDLE}",
                       p is not None and p <= TARGET_IDLE_BYTES and q is not None and q <= TARGET_IDLE))
    return out


def verdict(label, p, ref, q, needed, ok):
    r = "n/a" if q is None else f"{q:.3f}×" if q >= 0.1 else fmt_ratio(q)
    return f"| {label} | {fmt_int(p)} | {fmt_int(ref)} | {r} | {needed} | {'PASS' if ok else 'MISS'} |"

