"""The proxy's memory row: BENCH_PROXY_IDLE relayed clients, each of which sends one 512-byte
message, gets its echo back and then stays connected and silent. The figure is the relay's
VmRSS with all of them open minus before the first, divided by the clients. Goal: at most a
tenth of HAProxy's (which frees its buffers once a connection is idle)."""

import socket
import time

from kit.relay import Relay


class IdleAfterEcho:
    key, figure, unit, digits = "proxy-idle", "bytes_per_idle", "bytes of relay VmRSS per idle relayed client", 0
    relays, ref, goal = ("progjar", "haproxy"), "haproxy", "ratio ≤ 0.10"

    def __init__(self, n):
        self.n = n
        self.conns = n
        self.label = f"{n:,} idle relayed clients, after one 512 B echo each"

    def met(self, ours, ratio):
        return ratio is not None and ratio <= 0.10

    def measure(self, bench, name, _rnd):
        relay = Relay(bench, name, self.n)
        clients = []
        try:
            time.sleep(0.2)
            rss0 = relay.rss_kib()
            host, port = relay.addr.rsplit(":", 1)
            message = b"x" * 512
            for _ in range(self.n):
                s = socket.create_connection((host, int(port)), timeout=10)
                clients.append(s)
                s.sendall(message)
                got = 0
                while got < len(message):
                    piece = s.recv(65536)
                    if not piece:
                        raise RuntimeError(f"{name} closed a client before its echo")
                    got += len(piece)
            time.sleep(0.5)  # every echo written: nothing left in flight
            rss1 = relay.rss_kib()
        except (OSError, RuntimeError) as e:
            return {"problem": f"{len(clients)} clients open: {e}"}
        finally:
            for s in clients:
                s.close()
            relay.stop()
        return {"bytes_per_idle": (rss1 - rss0) * 1024 / self.n, "rss_before_kib": rss0, "rss_after_kib": rss1}

    def said(self, r):
        b = r.get("bytes_per_idle")
        return f"VmRSS {r.get('rss_before_kib')} → {r.get('rss_after_kib')} KiB: {b if b is None else f'{b:,.0f}'} B per idle client"


def rows(s):
    return [IdleAfterEcho(s.idle)]
