"""The matrix's connect-rate row (netperf's TCP_CRR): each connection connects, echoes one
message and closes, and a new one takes its place; echoes/s is then connections/s, and server
CPU per echo is CPU per connection (accept, epoll_ctl add and delete, close)."""

from kit.figures import target
from kit.stress import Scenario


class ConnectRate(Scenario):
    """The client closes first, so TIME_WAIT stays on the client's side; on loopback Linux
    reuses those ports (net.ipv4.tcp_tw_reuse = 2, the default), so the ~28000 local ports do
    not run out."""

    def stress_args(self, secs):
        return super().stress_args(secs) + ["--per-connection", "1"]


def rows(s):
    return [ConnectRate("crr", "50 conns, connect + 64 B echo + close (TCP_CRR)", 50, 64)]


def figures(s):
    return []


def targets(s, results, label):
    return [target(results, "connections/s, TCP_CRR", "crr", ("json", "connections_per_sec"), "ratio ≥ 1",
                   lambda p, q: q is not None and q >= 1)]
