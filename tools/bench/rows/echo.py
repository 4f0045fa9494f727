"""The matrix's echo rows: request/response at 1, 50 and 1000 connections of 64 and 512 bytes
(each connection waits for its echo before sending the next message), and the bulk row (one
connection streaming 64 KiB messages, BENCH_PIPELINE in flight): echoes/s, p99, CPU per echo,
Gbit/s each way."""

from kit.figures import target
from kit.report import fmt_f
from kit.stress import Scenario

REQUEST_RESPONSE = ("1x64", "1x512", "50x64", "50x512", "1000x64", "1000x512")


def rows(s):
    return [
        Scenario("1x64", "1 conn, 64 B", 1, 64),
        Scenario("1x512", "1 conn, 512 B", 1, 512),
        Scenario("50x64", "50 conns, 64 B", 50, 64),
        Scenario("50x512", "50 conns, 512 B", 50, 512),
        Scenario("1000x64", "1000 conns, 64 B", 1000, 64),
        Scenario("1000x512", "1000 conns, 512 B", 1000, 512),
        Scenario("bulk", f"1 conn, 64 KiB stream, {s.pipeline} in flight", 1, 64 * 1024, pipeline=s.pipeline),
    ]


def figures(s):
    """The rows of the "Bulk and memory" table: label, where in a run's results, digits."""
    return [
        ("bulk Gbit/s sent", ("bulk", "json", "gbit_per_sec_sent"), 2),
        ("bulk Gbit/s received", ("bulk", "json", "gbit_per_sec_received"), 2),
    ]


def targets(s, results, label):
    cpu = ("cpu_ns_per_echo",)
    out = [target(results, f"server CPU ns/echo, {label(key)}", key, cpu, "ratio ≤ 0.90",
                  lambda p, q: q is not None and q <= 0.9)
           for key in ("50x512", "1000x512")]
    out += [target(results, f"echoes/s, {label(key)}", key, ("json", "messages_per_sec"), "ratio ≥ 1",
                   lambda p, q: q is not None and q >= 1)
            for key in REQUEST_RESPONSE]
    out += [target(results, f"bulk Gbit/s {way}", "bulk", ("json", f"gbit_per_sec_{way}"), "≥ 8 and ratio ≥ 1",
                   lambda p, q: p is not None and p >= 8 and q is not None and q >= 1, fmt=lambda x: fmt_f(x, 2))
            for way in ("sent", "received")]
    out += [target(results, f"p99 µs, {label(key)}", key, ("json", "latency_us", "p99"), "ratio ≤ 1",
                   lambda p, q: q is not None and q <= 1)
            for key in ("1000x64", "1000x512")]
    return out
