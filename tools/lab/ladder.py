#!/usr/bin/env python3
"""Ladder diagrams of the TCP connections in lab captures, drawn in text.

    ladder.py [--steps FILE] [--require-overlap STEP] [--require-text STEP TEXT]
              [--require-encrypted STEP TEXT] [--require-refusal STEP TEXT] [LABEL=]CAPTURE.pcap ...

Each capture is read with `tcpdump -r FILE -nn -tt -S -x` (absolute sequence numbers,
which the diagram makes relative to each side's SYN, and each packet's bytes in hex, as
far as the capture kept them: what each side of a connection carried is shown as text, or
as "encrypted" when it is not text, with the TLS records it was made of: tlsrec.py).
For every TCP connection it
draws the client (the side that sent the SYN: mesin2 or mesin3) on the left and the
server (mesin1) on the right, one arrow per segment: SYN, SYN-ACK, ACK, data with its
length, FIN, RST, with the time in ms since the connection's first packet.

--steps names a file of `EPOCH LABEL` lines written by tools/lab/lab as each task
starts; every connection is put under the task during which it started, and every
task with two or more connections on the bridge gets a timeline showing how they
overlap. --require-overlap STEP exits 1 unless every connection of the task whose
label starts with STEP had completed its handshake before any of them sent a FIN or RST,
and each had its first byte of echo before any of them was closed (served at once).
--require-text STEP TEXT exits 1 unless the task whose label starts with STEP has two or
more connections on the bridge and each carried TEXT both ways, as text (the relay's two
legs, in plain text). --require-encrypted STEP TEXT exits 1 unless they each carried TLS
records both ways and TEXT in neither (the relay's legs, encrypted). --require-refusal STEP
TEXT exits 1 unless the client's leg shows a TLS handshake the client ended with an alert
instead of its Finished, and TEXT is on no leg. Each may be given more than once.

A capture that is cut short or corrupt gets one line on stderr and exit status 2.
tools/lab/report.py draws the same connections as a page; both read captures here.
"""

import argparse
import os
import re
import struct
import subprocess
import sys

import tlsrec

NAMES = {}
for _n in (1, 2, 3):
    NAMES[f"172.16.16.10{_n}"] = f"mesin{_n}"
    NAMES[f"fd16:16:16::10{_n}"] = f"mesin{_n}"
NAMES["127.0.0.1"] = "localhost"
NAMES["::1"] = "localhost"

TCP = re.compile(r"^(\d+\.\d+) IP6? (\S+)\.(\d+) > (\S+)\.(\d+): Flags \[([^\]]*)\](.*)$")
SEQ = re.compile(r", seq (\d+)(?::(\d+))?")
ACK = re.compile(r", ack (\d+)")
LEN = re.compile(r", length (\d+)")

WIDTH = 54  # characters between the two vertical bars
HEAD = 14  # segments drawn at the start of a long connection
TAIL = 10  # ... and at its end


class Packet:
    def __init__(self, t, src, sport, dst, dport, flags, rest):
        self.t = t
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport
        self.flags = flags
        m = SEQ.search(rest)
        self.seq = int(m.group(1)) if m else None
        m = ACK.search(rest)
        self.ack = int(m.group(1)) if m else None
        m = LEN.search(rest)
        self.length = int(m.group(1)) if m else 0
        self.raw = bytearray()  # the packet from its IP header on, as far as it was captured

    def payload(self):
        """The TCP payload's bytes that the capture kept (the first of them, when the
        capture's snap length cut the packet)."""
        if len(self.raw) < 20:
            return b""
        ip = (self.raw[0] & 0x0F) * 4 if self.raw[0] >> 4 == 4 else 40
        if len(self.raw) < ip + 13:
            return b""
        tcp = (self.raw[ip + 12] >> 4) * 4
        return bytes(self.raw[ip + tcp : ip + tcp + self.length])

    def has(self, flag):
        return flag in self.flags

    def name(self):
        parts = [w for f, w in (("S", "SYN"), ("F", "FIN"), ("R", "RST"), ("P", "PSH")) if f in self.flags]
        if "." in self.flags:
            parts.append("ACK")
        return "-".join(parts) or "(no flags)"


class Conn:
    def __init__(self, source, first):
        self.source = source
        self.packets = []
        # The client is whoever sent a SYN without ACK; failing that, the higher port.
        if first.has("S") and not first.has("."):
            self.client, self.server = (first.src, first.sport), (first.dst, first.dport)
        elif first.has("S"):
            self.client, self.server = (first.dst, first.dport), (first.src, first.sport)
        elif first.sport > first.dport:
            self.client, self.server = (first.src, first.sport), (first.dst, first.dport)
        else:
            self.client, self.server = (first.dst, first.dport), (first.src, first.sport)
        self.isn = {}
        self.step = ""
        self.high = {}  # highest relative sequence number sent so far, per side
        self.retrans = set()  # ids of segments that repeat bytes already sent

    def note_data(self, p):
        side = (p.src, p.sport)
        if p.length and p.seq is not None and side in self.isn:
            start = self.rel(side, p.seq)
            if start + p.length <= self.high.get(side, 0):
                self.retrans.add(id(p))
            self.high[side] = max(self.high.get(side, 0), start + p.length)

    def carried(self, from_client):
        """What one side sent, in sequence order, each byte once, as far as the capture kept
        it: (bytes, how many bytes it sent that the capture did not keep)."""
        side = self.client if from_client else self.server
        pieces = {}
        for p in self.packets:
            if (p.src, p.sport) == side and p.length and p.seq is not None:
                pieces.setdefault(self.rel(side, p.seq), p)
        out, at, missing = bytearray(), 1, 0
        for start in sorted(pieces):
            p = pieces[start]
            if start + p.length <= at:
                continue  # bytes already placed
            data = p.payload()[max(0, at - start) :]
            out += data
            missing += p.length - max(0, at - start) - len(data)
            at = start + p.length
        return bytes(out), missing

    def bytes_sent(self, side):
        """Payload bytes one side sent (each byte once, retransmissions not counted)."""
        if side in self.high:
            return self.high[side] - 1
        return sum(p.length for p in self.packets if (p.src, p.sport) == side)

    def add(self, p):
        if p.has("S") and p.seq is not None:
            self.isn.setdefault((p.src, p.sport), p.seq)
        self.packets.append(p)
        self.note_data(p)

    def over(self):
        return any(p.has("F") or p.has("R") for p in self.packets)

    def from_client(self, p):
        return (p.src, p.sport) == self.client

    @property
    def start(self):
        return self.packets[0].t

    @property
    def end(self):
        return self.packets[-1].t

    def established(self):
        """Time of the client's ACK that completes the three-way handshake, or None."""
        synack = False
        for p in self.packets:
            if p.has("S") and p.has(".") and not self.from_client(p):
                synack = True
            elif synack and self.from_client(p) and p.has(".") and not p.has("S"):
                return p.t
        return None

    def first_data(self, from_client):
        """When the client (or the server: its echo) sent its first byte of data, or None."""
        return next((p.t for p in self.packets if p.length and self.from_client(p) == from_client), None)

    def first_close(self):
        """When either side sent its FIN (or a RST): the connection starts to close."""
        for p in self.packets:
            if p.has("F") or p.has("R"):
                return p.t
        return None

    def closed(self):
        """When both sides had sent their FIN (or a RST went by): the connection is closed."""
        fins = set()
        for p in self.packets:
            if p.has("R"):
                return p.t
            if p.has("F"):
                fins.add((p.src, p.sport))
                if len(fins) == 2:
                    return p.t
        return None

    def name(self, addr):
        return endpoint(addr, self.source)

    def rel(self, side, value):
        isn = self.isn.get(side)
        return value if isn is None else (value - isn) % (1 << 32)


def endpoint(addr, source=""):
    """The machine an address belongs to; loopback addresses belong to the capture's machine."""
    name = NAMES.get(addr, addr)
    if name == "localhost" and source.endswith(" lo"):
        return source[: -len(" lo")] + " (lo)"
    return name


def read_text(lines, source, conns, others):
    """Group the TCP lines of one capture into connections, in order of their first packet."""
    live = {}
    last = None
    for line in lines:
        line = line.rstrip("\n")
        if line.startswith("\t0x"):  # `-x`: the last packet's bytes, 16 a line
            if last is not None:
                last.raw += bytes.fromhex(line.split(":", 1)[1].replace(" ", ""))
            continue
        last = None
        m = TCP.match(line)
        if not m:
            if line.strip():
                others.append((source, line))
            continue
        t, src, sport, dst, dport, flags, rest = m.groups()
        p = Packet(float(t), src, int(sport), dst, int(dport), flags, rest)
        key = frozenset([(src, p.sport), (dst, p.dport)])
        conn = live.get(key)
        if conn is None or (p.has("S") and not p.has(".") and conn.over()):
            conn = Conn(source, p)
            live[key] = conn
            conns.append(conn)
        conn.add(p)
        last = p


class CaptureError(Exception):
    """A capture that cannot be read: missing, cut short, or not a capture at all."""


PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


def check_pcap(path):
    """Walk a pcap file's record headers, so that a file cut short or corrupt is named as
    such (tcpdump would print the packets before the damage and then fail)."""
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")
    except OSError as e:
        raise CaptureError(f"cannot read {path}: {e.strerror}") from None
    with f:
        head = f.read(24)
        if not head:
            raise CaptureError(f"{path} is empty (not even a pcap header)")
        if head[:4] == PCAPNG_MAGIC:
            return  # pcapng (Wireshark's format): tcpdump checks it
        endian = PCAP_MAGIC.get(head[:4])
        if endian is None:
            raise CaptureError(f"{path} is not a pcap capture (it does not start with a pcap header)")
        if len(head) < 24:
            raise CaptureError(f"{path} is cut short: its pcap header has {len(head)} of 24 bytes")
        snaplen = struct.unpack(endian + "I", head[16:20])[0]
        at, n = 24, 0
        while at < size:
            rec = f.read(16)
            if len(rec) < 16:
                raise CaptureError(f"{path} is cut short: packet {n + 1}'s header at byte {at} is incomplete")
            incl, orig = struct.unpack(endian + "II", rec[8:16])
            if incl > max(snaplen, 262144) or incl > orig:
                raise CaptureError(f"{path} is corrupt: packet {n + 1} at byte {at} claims {incl} bytes")
            if at + 16 + incl > size:
                raise CaptureError(
                    f"{path} is cut short: packet {n + 1} at byte {at} needs {incl} bytes, {size - at - 16} are left"
                )
            f.seek(incl, 1)
            at += 16 + incl
            n += 1


def read_capture(path):
    """The lines of `tcpdump -r PATH -nn -tt -S -x`; CaptureError when it cannot be read."""
    check_pcap(path)
    try:
        out = subprocess.run(
            ["tcpdump", "-r", path, "-nn", "-tt", "-S", "-x"], capture_output=True, text=True, check=False, timeout=120
        )
    except FileNotFoundError:
        raise CaptureError("tcpdump is needed to read captures (make deps installs it)") from None
    except subprocess.TimeoutExpired:
        raise CaptureError(f"tcpdump took more than 120 s to read {path}") from None
    if out.returncode != 0:
        why = next((line for line in out.stderr.splitlines() if line.strip()), "tcpdump failed")
        raise CaptureError(f"cannot read {path}: {why}")
    return out.stdout.splitlines()


def load(specs, steps_path=None):
    """Read captures ([LABEL=]FILE) and the steps file: (connections, other packets, steps).
    Each connection, and each other packet, is put under the step during which it came."""
    conns, others = [], []
    for spec in specs:
        label, _, path = spec.rpartition("=")
        read_text(read_capture(path), label or path, conns, others)
    conns.sort(key=lambda c: c.start)
    steps = []
    if steps_path:
        try:
            with open(steps_path) as f:
                for line in f:
                    t, _, label = line.strip().partition(" ")
                    if t:
                        steps.append((float(t), label))
        except (OSError, ValueError) as e:
            raise CaptureError(f"cannot read the steps file {steps_path}: {e}") from None
        steps.sort()
    for c in conns:
        c.step = step_at(steps, c.start)
    return conns, others, steps


def step_at(steps, t):
    """The label of the last step that began at or before t ("" before the first)."""
    label = ""
    for start, name in steps:
        if start <= t:
            label = name
    return label


def timeline_groups(conns):
    """The connections a timeline is drawn for, by step: those on the bridge (or all of
    them when there is one capture), in steps with two or more that are not a relay's legs."""
    groups = {}
    for c in conns:
        if c.source == "bridge" or len({x.source for x in conns}) == 1:
            groups.setdefault(c.step, []).append(c)
    # A relay's two legs are one conversation, not clients served together: no timeline.
    return {s: g for s, g in groups.items() if len(g) >= 2 and (s or len(groups) == 1) and not legs(g)}


def overlap(conns):
    """(last handshake, first FIN, first close) when every handshake was done before any
    connection began to close (the connections were open together); None otherwise."""
    ests = [c.established() for c in conns]
    if any(e is None for e in ests):
        return None
    end = max(c.end for c in conns)
    first_fin = min((c.first_close() for c in conns if c.first_close() is not None), default=end)
    first_closed = min((c.closed() for c in conns if c.closed() is not None), default=end)
    return (max(ests), first_fin, first_closed) if max(ests) < first_fin else None


def served_at_once(conns):
    """Whether every connection got its first byte of echo before any of them closed,
    and the (connection, echo time) of the one that waited longest."""
    first_closed = min((c.closed() for c in conns if c.closed() is not None), default=None)
    echoes = [(c, c.first_data(False)) for c in conns]
    if any(e is None for _, e in echoes):
        return False, None
    last = max(echoes, key=lambda ce: ce[1])
    return first_closed is None or last[1] < first_closed, last


def arrow(label, left_to_right):
    label = f" {label} "
    fill = max(WIDTH - len(label) - 3, 1)
    if left_to_right:
        return "|--" + label + "-" * fill + ">|"
    return "|<" + "-" * fill + label + "--|"


def segment_label(conn, p):
    label = p.name()
    if p.length:
        label += f" {p.length} B"
    if id(p) in conn.retrans:
        label += " (again)"
    return label


def segment_note(conn, p):
    me = (p.src, p.sport)
    peer = (p.dst, p.dport)
    bits = []
    if p.seq is not None:
        seq = conn.rel(me, p.seq)
        bits.append(f"seq {seq}:{seq + p.length}" if p.length else f"seq {seq}")
    if p.ack is not None and p.has("."):
        bits.append(f"ack {conn.rel(peer, p.ack)}")
    return " ".join(bits)


def describe(conn):
    c, s = conn.client, conn.server
    return f"{conn.name(c[0])} {c[0]}:{c[1]}  ->  {conn.name(s[0])} {s[0]}:{s[1]}"


def summary(conn):
    cname, sname = conn.name(conn.client[0]), conn.name(conn.server[0])

    def ms(t):
        return f"{1000 * (t - conn.start):.3f} ms"

    bits = []
    est = conn.established()
    rst = next((p for p in conn.packets if p.has("R")), None)
    if est is None and rst is not None:
        bits.append(
            f"refused: {conn.name(rst.src)} answered the SYN with {rst.name()} "
            f"(nothing listens on port {rst.sport}): connect() fails with ECONNREFUSED"
        )
        return "; ".join(bits)
    if est is not None:
        bits.append(f"handshake done at {ms(est)}")
    bits.append(f"{cname} sent {conn.bytes_sent(conn.client)} B, {sname} sent {conn.bytes_sent(conn.server)} B")
    fin = next((p for p in conn.packets if p.has("F")), None)
    if fin is not None:
        bits.append(f"{conn.name(fin.src)} sent the first FIN at {ms(fin.t)}")
    closed = conn.closed()
    if closed is not None:
        bits.append(f"closed at {ms(closed)}")
    if conn.retrans:
        bits.append(f"{len(conn.retrans)} retransmitted segment(s), marked (again)")
    return "; ".join(bits)


PRINTABLE = set(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}
SHOWN = 120  # characters of a side's bytes shown as text


def carried_words(conn, from_client):
    """What one side carried, in words: `46 B, as text: 'INI ADALAH ...'`, or `1753 B,
    encrypted (TLS: ClientHello, ChangeCipherSpec, 2 encrypted records)`, or `517 B,
    encrypted (not text)`; None when it sent nothing."""
    data, missing = conn.carried(from_client)
    sent = conn.bytes_sent(conn.client if from_client else conn.server)
    if not data and not missing:
        return None
    recs = tlsrec.records(data)
    if recs:
        return f"{sent} B, encrypted (TLS: {tlsrec.words(recs)})"
    if data and any(b not in PRINTABLE for b in data):
        return f"{sent} B, encrypted (not text)"
    text = data.decode("ascii").replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    shown = text[:SHOWN] + ("..." if len(text) > SHOWN or missing else "")
    kept = f" (the capture kept the first {len(data)})" if missing else ""
    return f"{sent} B{kept}, as text: '{shown}'"


def carried_lines(conn):
    """One line per side that sent data: who to whom, and what, as text or "encrypted"."""
    cname, sname = conn.name(conn.client[0]), conn.name(conn.server[0])
    lines = []
    for from_client, who in ((True, f"{cname} -> {sname}"), (False, f"{sname} -> {cname}")):
        words = carried_words(conn, from_client)
        if words is not None:
            lines.append(f"{who}: {words}")
    return lines


def legs(conns):
    """A relay's two legs among a task's connections: (client's leg, server's leg) pairs,
    where the first's server is the machine that opened the second."""
    pairs = []
    for a in conns:
        for b in conns:
            if a is not b and a.server[0] == b.client[0] and a.start <= b.start:
                pairs.append((a, b))
                break
    return pairs


def carries_text(conns, text):
    """Whether two or more connections (a relay's legs) each carried `text` both ways, as text."""
    want = text.encode()
    both_ways = [c for c in conns if all(want in c.carried(side)[0] for side in (True, False))]
    return len(conns) >= 2 and len(both_ways) == len(conns)


def hides_text(conns, text):
    """Whether `text` is in none of the connections' bytes, either way."""
    want = text.encode()
    return not any(want in c.carried(side)[0] for c in conns for side in (True, False))


def carries_tls(conns, text):
    """Whether two or more connections (a relay's legs) each carried TLS records both ways,
    and `text` in neither: the relay's two legs, encrypted."""
    tls = [c for c in conns if all(tlsrec.records(c.carried(side)[0]) for side in (True, False))]
    return len(conns) >= 2 and len(tls) == len(conns) and hides_text(conns, text)


def shows_refusal(conns, text):
    """Whether a relay's client leg shows a TLS handshake the client ended with an alert
    (tlsrec.refusal), and `text` is on no leg."""
    pairs = legs(conns)
    first = pairs[0][0] if pairs else None
    ok = first is not None and tlsrec.refusal(first.carried(True)[0], first.carried(False)[0])
    return ok and hides_text(conns, text)


# What each --require-... of a relay's legs checks, and what it says when they pass or fail.
LEG_CHECKS = {
    "text": (carries_text, "both legs carried {text!r} as text, both ways: the relay in the middle can read it",
             "not every leg carried {text!r} both ways as text"),
    "encrypted": (carries_tls, "both legs carried only TLS records, {text!r} in neither: encrypted",
                  "not every leg carried only TLS records without {text!r}"),
    "refusal": (shows_refusal, "the client ended the TLS handshake with an alert, {text!r} on no leg: it refused",
                "the client's leg shows no TLS handshake ended by the client's alert (or shows {text!r})"),
}


def check_legs(conns, kind, step, text):
    """One --require-... check of the task whose label starts with `step`; prints its verdict."""
    test, good, bad = LEG_CHECKS[kind]
    group = [c for c in conns if c.step.startswith(step) and c.source == "bridge"]
    ok = test(group, text)
    print(f"\n{step} " + (good if ok else bad).format(text=text))
    return ok


def draw(conn, index, total):
    cname, sname = conn.name(conn.client[0]), conn.name(conn.server[0])
    print()
    title = f"connection {index} of {total} [{conn.source}]"
    if conn.step:
        title += f" - {conn.step}"
    print(title)
    print("  " + describe(conn))
    left = f"{cname} :{conn.client[1]}"
    right = f"{sname} :{conn.server[1]}"
    print(f"  {'ms':>10}   {left:<{WIDTH // 2 + 2}}{right:>{WIDTH - WIDTH // 2 + 1}}")
    pkts = conn.packets
    shown = list(enumerate(pkts))
    skipped = None
    if len(pkts) > HEAD + TAIL + 4:
        skipped = pkts[HEAD:-TAIL]
        shown = list(enumerate(pkts[:HEAD])) + [(None, None)] + list(enumerate(pkts[-TAIL:], len(pkts) - TAIL))
    for _, p in shown:
        if p is None:
            print_skipped(conn, skipped)
            continue
        ms = 1000 * (p.t - conn.start)
        line = arrow(segment_label(conn, p), conn.from_client(p))
        print(f"  {ms:>10.3f}   {line}  {segment_note(conn, p)}")
    print("  " + summary(conn))
    for line in carried_lines(conn):
        print("  carried: " + line)


def skipped_lines(conn, skipped):
    """What the segments left out of a long connection carried, as four lines:
    the text ladder and the page (report.py) both show them."""
    cname, sname = conn.name(conn.client[0]), conn.name(conn.server[0])
    data = {True: [0, 0], False: [0, 0]}
    for p in skipped:
        if p.length:
            d = data[conn.from_client(p)]
            d[0] += 1
            d[1] += p.length
    span = 1000 * (skipped[-1].t - skipped[0].t)
    return [
        f"... {len(skipped)} more segments in {span:.1f} ms:",
        f"{cname} -> {sname}: {data[True][1]} B in {data[True][0]} data segments",
        f"{sname} -> {cname}: {data[False][1]} B in {data[False][0]} data segments",
        f"and {len(skipped) - data[True][0] - data[False][0]} ACK-only segments (retransmissions counted)",
    ]


def print_skipped(conn, skipped):
    pad = " " * 15
    first, *rest = skipped_lines(conn, skipped)
    print(f"{pad}|{'':{WIDTH}}|")
    print(f"{pad}:  {first}")
    for line in rest:
        print(f"{pad}:      {line}")
    print(f"{pad}|{'':{WIDTH}}|")


def since(t, t0):
    return f"{1000 * (t - t0):.3f} ms"


def draw_timeline(step, conns):
    """A bar per connection on one time axis, then when each one's handshake, echo and close
    came (when every handshake completed)."""
    t0 = min(c.start for c in conns)
    t1 = max(c.end for c in conns)
    span = max(t1 - t0, 1e-6)
    cols = 60

    def col(t):
        return min(int((t - t0) / span * cols), cols - 1)

    print()
    print(f"timeline - {step or 'all connections'} (0 = first SYN; each column = {1000 * span / cols:.2f} ms)")
    print(f"  {'':22}0 ms{'':{cols - 14}}{1000 * span:>10.1f} ms")
    for c in conns:
        row = [" "] * cols
        for i in range(col(c.start), col(c.end) + 1):
            row[i] = "="
        for p in c.packets:
            if p.length and row[col(p.t)] == "=":
                row[col(p.t)] = "#"
        for p in c.packets:
            if p.has("F") or p.has("R"):
                row[col(p.t)] = "R" if p.has("R") else "F"
        row[col(c.start)] = "S"
        name = f"{c.name(c.client[0])}:{c.client[1]}"
        print(f"  {name:<22}|{''.join(row)}|")
    print("  S = SYN, = open, # data, F = a FIN (one per side), R = RST")
    ests = [c.established() for c in conns]
    if any(e is None for e in ests):
        return
    for c, e in zip(conns, ests):
        close, closed, echo = c.first_close(), c.closed(), c.first_data(False)
        print(
            f"  {c.name(c.client[0])}:{c.client[1]}: handshake done at {since(e, t0)}, "
            + (f"first echo byte at {since(echo, t0)}, " if echo is not None else "no echo, ")
            + (f"first FIN at {since(close, t0)}, " if close is not None else "")
            + (f"closed at {since(closed, t0)}" if closed is not None else "never closed")
        )


def timeline_verdict(conns):
    """Whether the connections were open together and served at once: (True or False, the
    lines that say so). Nothing is drawn here; report.py words the same facts for the page."""
    t0 = min(c.start for c in conns)
    if any(c.established() is None for c in conns):
        return False, ["  not every connection completed its handshake"]
    together = overlap(conns)
    if together is None:
        return False, ["  => no overlap: a connection began to close before the other was established"]
    last_est, first_fin, first_closed = together
    lines = [
        f"  => overlap: every handshake was done (at {since(last_est, t0)}) before any FIN "
        f"(at {since(first_fin, t0)}); open together until {since(first_closed, t0)}"
    ]
    at_once, last = served_at_once(conns)
    if last is None:
        return False, lines + ["  => not every client had an echo"]
    waiter, echo = last
    who = f"{waiter.name(waiter.client[0])}:{waiter.client[1]}"
    if at_once:
        return True, lines + [
            f"  => served at once: every client had its echo (the last at {since(echo, t0)}) "
            "before any connection closed"
        ]
    return False, lines + [
        f"  => served one after the other: {who} had its first echo byte only at {since(echo, t0)}, "
        f"after the other connection closed ({since(first_closed, t0)})"
    ]


def timeline(step, conns):
    """The timeline drawn, then its verdict; True when the connections overlapped and were
    served at once."""
    draw_timeline(step, conns)
    ok, lines = timeline_verdict(conns)
    print("\n".join(lines))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("captures", nargs="*", help="[LABEL=]FILE.pcap")
    ap.add_argument("--steps", help="file of 'EPOCH LABEL' lines")
    ap.add_argument(
        "--require-overlap", metavar="STEP", help="exit 1 unless this task's connections overlap and are served at once"
    )
    for kind, what in (
        ("text", "each carried TEXT both ways, as text"),
        ("encrypted", "each carried only TLS records both ways, and TEXT in neither"),
        ("refusal", "show a TLS handshake the client ended with an alert, and TEXT on no leg"),
    ):
        ap.add_argument(
            f"--require-{kind}",
            nargs=2,
            action="append",
            default=[],
            metavar=("STEP", "TEXT"),
            help=f"exit 1 unless this task's connections on the bridge {what}",
        )
    args = ap.parse_args()

    try:
        conns, others, _ = load(args.captures, args.steps)
    except CaptureError as e:
        print(f"ladder.py: {e}", file=sys.stderr)
        return 2

    if not conns:
        print("no TCP connection in the capture")
    for i, c in enumerate(conns, 1):
        draw(c, i, len(conns))

    if others:
        print()
        print("other packets (not TCP):")
        kinds = {}
        for source, line in others:
            kind = classify(line)
            kinds.setdefault((source, kind), []).append(line)
        for (source, kind), lines in kinds.items():
            print(f"  [{source}] {len(lines)} {kind}")
            if kind.startswith(("DNS", "ICMP port", "ARP")):
                for line in lines[:4]:
                    print(f"      {line[:110]}")

    ok = True
    groups = timeline_groups(conns)
    for step, group in groups.items():
        overlap = timeline(step, group)
        if args.require_overlap and step.startswith(args.require_overlap) and not overlap:
            ok = False
    if args.require_overlap and not any(s.startswith(args.require_overlap) for s in groups):
        print(f"\nno two connections found for {args.require_overlap!r}")
        ok = False
    for kind in LEG_CHECKS:
        for step, text in getattr(args, f"require_{kind}"):
            ok &= check_legs(conns, kind, step, text)
    return 0 if ok else 1


def classify(line):
    if " ARP," in line:
        return "ARP (IPv4 address -> MAC address)"
    if "ICMP6" in line:
        if "neighbor" in line:
            return "ICMPv6 neighbour discovery (IPv6's ARP)"
        if "multicast listener" in line:
            return "ICMPv6 multicast listener reports (the kernel, as each eth1 comes up)"
        return "ICMPv6 other"
    if " ICMP " in line:
        return "ICMP port unreachable (nothing listens there)" if "unreachable" in line else "ICMP"
    if " igmp " in line:
        return "IGMP reports (the kernel, as each eth1 comes up)"
    if re.search(r"\.53[: ]", line):
        return "DNS (udp.port == 53)"
    return "other"


if __name__ == "__main__":
    sys.exit(main())
