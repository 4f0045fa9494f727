#!/usr/bin/env python3
"""The lab's captures as one page a student looks at: lab/report.html.

    report.py --out FILE.html [--steps FILE] [LABEL=]CAPTURE.pcap ...

The same facts as the text ladders of ladder.py (which reads the captures and groups
them; nothing is parsed twice), drawn as inline SVG: per task, each TCP connection as
a ladder (SYN, SYN-ACK, data with its size, FIN, RST; the time on the left) with what
each side carried (as text, or "encrypted" when it is not text), task 1's DNS query, the
timeline of task 4's two clients beside the same task against the course's
one-client-at-a-time server, and task 5's relay in each of its runs (plaintext, TLS,
intercepted, refused): its two legs' ladders side by side, each leg's bytes as text or as
"encrypted" with the TLS records they were. The
page is self-contained: no script, no font, no request (its Content-Security-Policy
forbids them), so it opens by double-click.

A capture cut short or corrupt, or an --out whose directory does not exist, gets one
line on stderr and exit status 2.
"""

import argparse
import datetime
import os
import re
import sys

import ladder
import svg as kit

COLOURS = {"SYN": "#2e7d32", "FIN": "#6a1b9a", "RST": "#c62828", "data": "#1565c0", "ACK": "#78909c"}
ECHO = "#ef6c00"  # the server's data in the timeline
WAIT = "#ffe0b2"  # a client waiting for its echo
OPEN = "#cfd8dc"  # a connection open
TOGETHER = "#fff59d"  # both connections open

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #212121; max-width: 1200px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 6px; border-bottom: 1px solid #ccc; }
h3 { font-size: 15px; margin: 16px 0 2px; } p { margin: 4px 0; } nav a { margin-right: 14px; }
.row { display: flex; flex-wrap: wrap; gap: 20px; } .panel { flex: 1 1 560px; min-width: 0; }
svg { display: block; max-width: 100%; height: auto; } svg text { font: 12px system-ui, sans-serif; }
.muted { color: #616161; } .verdict { font-weight: 600; }
table { border-collapse: collapse; margin: 6px 0; font-size: 13px; }
td, th { padding: 2px 6px; text-align: right; } td { white-space: nowrap; }
th { border-bottom: 1px solid #999; font-weight: 600; } td:first-child, th:first-child { text-align: left; }
.key span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: -1px; }
.carried { font: 13px/1.4 ui-monospace, monospace; margin: 2px 0; overflow-wrap: anywhere; }
"""


esc = kit.escape


def text(x, y, s, anchor="start", colour="#212121", weight="normal"):
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{colour}" '
        f'font-weight="{weight}">{esc(s)}</text>'
    )


def rect(x, y, width, height, fill, title=""):
    tip = f"<title>{esc(title)}</title>" if title else ""
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" fill="{fill}">{tip}</rect>'


def kind(p):
    """The colour class of a segment: what a student looks for first."""
    for flag, name in (("R", "RST"), ("S", "SYN"), ("F", "FIN")):
        if p.has(flag):
            return name
    return "data" if p.length else "ACK"


def arrow(x1, x2, y, colour, label):
    """A horizontal arrow from x1 to x2 at y, with its label centred above it."""
    head = 8 if x2 > x1 else -8
    return (
        f'<line x1="{x1}" y1="{y}" x2="{x2 - head}" y2="{y}" stroke="{colour}" stroke-width="2"/>'
        f'<polygon points="{x2},{y} {x2 - head},{y - 4} {x2 - head},{y + 4}" fill="{colour}"/>'
        + text((x1 + x2) / 2, y - 5, label, "middle", colour)
    )


# The ladder's columns: time, client's line, server's line, sequence numbers, width.
T_X, C_X, S_X, N_X, L_W = 84, 250, 740, 756, 1040
ROW, TOP = 26, 58
WIDE = (T_X, C_X, S_X, N_X, L_W)
# Half as wide, without the sequence numbers: a relay's two legs side by side.
NARROW = (60, 130, 460, None, 560)


def ladder_svg(conn, geometry=WIDE):
    """One connection as a ladder; a long one shows its first and last segments."""
    t_x, c_x, s_x, n_x, width = geometry
    pkts = conn.packets
    rows = [(p, None) for p in pkts]
    if len(pkts) > ladder.HEAD + ladder.TAIL + 4:
        rows = [(p, None) for p in pkts[: ladder.HEAD]]
        rows += [(None, pkts[ladder.HEAD : -ladder.TAIL])]
        rows += [(p, None) for p in pkts[-ladder.TAIL :]]
    body, y = [], TOP
    for p, skipped in rows:
        if p is None:
            body.append(skipped_block(conn, skipped, y, c_x, s_x))
            y += 4 * 18 + 10
            continue
        y += ROW
        c = COLOURS[kind(p)]
        x1, x2 = (c_x, s_x) if conn.from_client(p) else (s_x, c_x)
        body.append(text(t_x, y + 4, f"{1000 * (p.t - conn.start):.3f}", "end"))
        body.append(arrow(x1, x2, y, c, ladder.segment_label(conn, p)))
        if n_x is not None:
            body.append(text(n_x, y + 4, ladder.segment_note(conn, p), colour="#616161"))
    height = y + 20
    c, s = conn.client, conn.server
    head = [
        text(t_x, 20, "time", "end", weight="bold"),
        text(t_x, 36, "(ms)", "end", colour="#616161"),
        text(c_x, 20, f"{conn.name(c[0])}  :{c[1]}", "middle", weight="bold"),
        text(c_x, 36, f"{c[0]} (client)", "middle", colour="#616161"),
        text(s_x, 20, f"{conn.name(s[0])}  :{s[1]}", "middle", weight="bold"),
        text(s_x, 36, f"{s[0]} (server)", "middle", colour="#616161"),
        f'<line x1="{c_x}" y1="{TOP - 12}" x2="{c_x}" y2="{height - 8}" stroke="#9e9e9e"/>',
        f'<line x1="{s_x}" y1="{TOP - 12}" x2="{s_x}" y2="{height - 8}" stroke="#9e9e9e"/>',
    ]
    if n_x is not None:
        head.append(text(width - 4, 36, "relative seq / ack", "end", "#616161"))
    return svg(width, height, head + body, f"ladder of {ladder.describe(conn)}")


def skipped_block(conn, skipped, y, c_x=C_X, s_x=S_X):
    """The segments left out of a long connection, counted, between dotted lifelines."""
    lines = ladder.skipped_lines(conn, skipped)
    out = [rect(c_x - 2, y + 8, s_x - c_x + 4, 4 * 18 + 4, "#fff")]
    for i, line in enumerate(lines):
        out.append(text((c_x + s_x) / 2, y + 24 + 18 * i, line, "middle", "#424242"))
    return "".join(out)


def svg(width, height, parts, title):
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}" role="img"><title>{esc(title)}</title>' + "".join(parts) + "</svg>"
    )


ADDR = r"(\d+\.\d+\.\d+\.\d+|[0-9a-f:]+)(?:\.(\d+))?"  # an address and maybe .PORT
DNS_LINE = re.compile(rf"^(\d+\.\d+) IP6? {ADDR} > {ADDR}: (.*)$")


def dns_exchange(others):
    """The DNS queries on a machine's lo and the ICMP errors answering them:
    [(time, from, to, label, capture)]."""
    out = []
    for source, line in others:
        if not source.endswith(" lo") or not ladder.classify(line).startswith(("DNS", "ICMP port")):
            continue
        m = DNS_LINE.match(line)
        if not m:
            continue
        t, src, sport, dst, dport, rest = m.groups()
        q = re.search(r"\b(A|AAAA|PTR|MX|TXT|SRV|CNAME)\? (\S+)", rest)
        if q:
            label = f"DNS query {q.group(1)}? {q.group(2)}"
        elif "unreachable" in rest:
            label = "ICMP port unreachable (nothing listens on port 53)"
        else:
            label = rest[:60]
        out.append((float(t), f"{src}:{sport}" if sport else src, f"{dst}:{dport}" if dport else dst, label, source))
    return out


def dns_svg(exchange):
    """Task 1's lookup on mesin1's lo as a ladder: the resolver's queries, the answers."""
    left = exchange[0][1].rsplit(":", 1)[0]
    lanes = {}
    for _, src, dst, _, _ in exchange:
        for end in (src, dst):
            lanes.setdefault(end.rsplit(":", 1)[0], []).append(end)
    right = next((a for a in lanes if a != left), left)
    t0 = exchange[0][0]
    body, y = [], TOP
    for t, src, dst, label, _ in exchange:
        y += ROW
        from_left = src.rsplit(":", 1)[0] == left
        x1, x2 = (C_X, S_X) if from_left else (S_X, C_X)
        colour = COLOURS["data"] if from_left else COLOURS["RST"]
        body.append(text(T_X, y + 4, f"{1000 * (t - t0):.3f}", "end"))
        body.append(arrow(x1, x2, y, colour, label))
        body.append(text(N_X, y + 4, f"{src} > {dst}", colour="#616161"))
    height = y + 20
    source = exchange[0][4]
    machine = source[: -len(" lo")]
    head = [
        text(T_X, 20, "time", "end", weight="bold"),
        text(T_X, 36, "(ms)", "end", colour="#616161"),
        text(C_X, 20, f"{machine}: the resolver (glibc)", "middle", weight="bold"),
        text(C_X, 36, left, "middle", colour="#616161"),
        text(S_X, 20, "resolv.conf's nameserver", "middle", weight="bold"),
        text(S_X, 36, f"{right}, port 53", "middle", colour="#616161"),
        text(L_W - 4, 36, "from > to", "end", "#616161"),
        f'<line x1="{C_X}" y1="{TOP - 12}" x2="{C_X}" y2="{height - 8}" stroke="#9e9e9e"/>',
        f'<line x1="{S_X}" y1="{TOP - 12}" x2="{S_X}" y2="{height - 8}" stroke="#9e9e9e"/>',
    ]
    return svg(L_W, height, head + body, f"DNS lookup on {source}")


def timeline_svg(conns, width, span_ms):
    """The connections of one task on one time axis (0 = first SYN, span_ms wide): when
    each was open, when its client sent, when the server echoed, and when it waited."""
    t0 = min(c.start for c in conns)
    x0, x1, top, lane = 150, width - 24, 40, 50
    scale = (x1 - x0) / span_ms

    def x(t):
        return x0 + min(1000 * (t - t0), span_ms) * scale

    parts = []
    together = ladder.overlap(conns)
    bottom = top + lane * len(conns)
    if together is not None:
        since, _, until = together
        a, b = x(since), x(until)
        parts.append(rect(a, top - 6, max(b - a, 2), bottom - top + 6, TOGETHER))
        label = f"both open: {1000 * (since - t0):.1f} to {1000 * (until - t0):.1f} ms"
        anchor, at = ("start", a) if a < (x0 + x1) / 2 else ("end", b)
        parts.append(text(at, top - 12, label, anchor, "#827717", "bold"))
    for i, c in enumerate(conns):
        parts.append(timeline_lane(c, top + lane * i, x, x0))
    parts.append(kit.Axis(x0, x1, bottom + 6).draw(span_ms, 6, "time since the first SYN (ms)"))
    return svg(width, bottom + 60, parts, "timeline of " + ", ".join(ladder.describe(c) for c in conns))


def timeline_lane(c, y, x, x0):
    """One connection's lane: open (grey), waiting for the echo (orange), data ticks."""
    parts = [
        text(x0 - 10, y + 16, f"{c.name(c.client[0])}  :{c.client[1]}", "end", weight="bold"),
        text(x0 - 10, y + 32, f"sent {c.bytes_sent(c.client)} B", "end", colour="#616161"),
    ]
    end = c.closed() or c.end
    parts.append(rect(x(c.start), y + 6, max(x(end) - x(c.start), 2), 28, OPEN))
    if x(end) - x(c.start) < 12:  # too short to see: say how long it was open
        parts.append(text(x(end) + 8, y + 24, f"open {1000 * (end - c.start):.1f} ms", colour="#424242"))
    sent, echo = c.first_data(True), c.first_data(False)
    if sent is not None and echo is not None and x(echo) - x(sent) >= 2:
        parts.append(rect(x(sent), y + 6, x(echo) - x(sent), 28, WAIT))
        wait = f"waiting for its echo: {1000 * (echo - sent):.1f} ms"
        if x(echo) - x(sent) > 7 * len(wait):
            parts.append(text((x(sent) + x(echo)) / 2, y + 24, wait, "middle", "#e65100"))
    for from_client, top, colour in ((True, y + 6, COLOURS["data"]), (False, y + 20, ECHO)):
        columns = sorted({int(x(p.t)) for p in c.packets if p.length and c.from_client(p) == from_client})
        parts += [rect(col, top, 1, 14, colour) for col in columns]
    for p in c.packets:
        if p.has("S") or p.has("F") or p.has("R"):
            parts.append(rect(x(p.t) - 1, y + 2, 3, 36, COLOURS[kind(p)], kind(p)))
    return "".join(parts)


def timeline_panel(step, conns, width, span_ms):
    """A task's timeline with its legend, a table of its times, and what they show."""
    t0 = min(c.start for c in conns)

    def ms(t):
        return "" if t is None else f"{1000 * (t - t0):.1f}"

    rows = []
    for c in conns:
        sent, echo = c.first_data(True), c.first_data(False)
        waited = "" if sent is None or echo is None else f"{1000 * (echo - sent):.1f}"
        cells = [f"{c.name(c.client[0])} :{c.client[1]}", ms(c.established()), ms(sent), ms(echo), waited]
        cells += [ms(c.first_close()), ms(c.closed())]
        rows.append("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in cells) + "</tr>")
    heads = ["client", "handshake", "1st byte sent", "1st echo byte", "waited", "1st FIN", "closed"]
    table = "<table><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr>" + "".join(rows) + "</table>"
    return (
        f'<div class="panel"><h3>{esc(step or "all connections")}</h3>'
        + timeline_svg(conns, width, span_ms)
        + f'<p class="verdict">{esc(verdict(conns))}</p>'
        + table
        + '<p class="muted">Times in ms since the first SYN.</p></div>'
    )


def verdict(conns):
    """In words: did the two clients overlap, and were they served at once?"""
    if ladder.overlap(conns) is None:
        return "No overlap: one connection began to close before the other was established."
    at_once, last = ladder.served_at_once(conns)
    if last is None:
        return "Both were open at once, but not every client had an echo."
    waiter, echo = last
    who = waiter.name(waiter.client[0])
    t0 = min(c.start for c in conns)
    if at_once:
        return (
            "Both open at once, and served at once: every echo began before either connection closed "
            f"({who}'s at {1000 * (echo - t0):.1f} ms)."
        )
    return (
        f"Both open at once (the kernel completed both handshakes), but served one after the other: "
        f"{who} had its first echo byte only at {1000 * (echo - t0):.1f} ms, after the other client left."
    )


def legend():
    keys = [(COLOURS[k], k) for k in ("SYN", "FIN", "RST")] + [(COLOURS["data"], "client's data")]
    keys += [(ECHO, "server's echo"), (OPEN, "open"), (WAIT, "waiting for the echo"), (TOGETHER, "both open")]
    return '<p class="key muted">' + "".join(f'<span style="background:{c}"></span>{esc(n)}' for c, n in keys) + "</p>"


def comparison(groups):
    """Every task's timeline, side by side, on one time scale."""
    if not groups:
        return ""
    span_ms = max(1000 * (max(c.end for c in g) - min(c.start for c in g)) for g in groups.values())
    width = 1160 if len(groups) == 1 else 580
    panels = "".join(timeline_panel(step, g, width, max(span_ms, 1e-3)) for step, g in groups.items())
    intro = ""
    if any(step.startswith("task 4") for step in groups):
        intro = (
            "<p>mesin2 sends a large file over a slow link while mesin3 sends one message. "
            "<code>progjar server</code> (one event loop) echoes both at once; the course's server "
            "(listen(1), one client at a time) leaves mesin3 waiting until mesin2 has left.</p>"
        )
    return (
        '<h2 id="timelines">Timelines: connections open at the same time</h2>'
        + intro
        + legend()
        + f'<div class="row">{panels}</div>'
    )


def carried_html(conn):
    """What each side of a connection carried: as text, or "encrypted" when it is not text."""
    lines = ladder.carried_lines(conn)
    return "".join(f'<p class="carried">{esc(line)}</p>' for line in lines)


# What each of task 5's runs shows, under its two legs.
RUNS = {
    "task 5, plaintext": "Without TLS the message is on both legs, for the relay and anyone on the wire.",
    "task 5, TLS": "TLS from mesin2 to mesin1: the relay passes records it cannot read, and both legs carry "
    "the same bytes (one TLS connection, end to end). mesin2 checked mesin1's certificate.",
    "task 5, intercepted": "The relay ends mesin2's TLS with a certificate of its own and opens its own TLS to "
    "mesin1: two TLS connections with keys of their own (the legs' bytes differ), and the message is read "
    "between them. On the wire this looks like the run above: only mesin2's check of the certificate could "
    "tell, and it did not check (--insecure, the course's CERT_NONE).",
    "task 5, refused": "mesin2 checks the certificate against mesin1's CA and refuses mesin3's: it answers "
    "the server's flight with an alert (a 19-byte encrypted record) instead of its Finished, and closes. "
    "The relay resets its own connection to mesin1. Not a byte of the message was sent.",
}


def legs_block(pair, conns):
    """A relay's two legs side by side: the client's connection to the relay on the left, the
    relay's own connection to the server on the right, and what each leg carried."""
    a, b = pair
    relay = a.name(a.server[0])
    panels = []
    for c, role in ((a, f"{a.name(a.client[0])} to the relay on {relay}"), (b, f"{relay} to the real server")):
        n = conns.index(c) + 1
        panels.append(
            f'<div class="panel"><h3>Connection {n} of {len(conns)}: {esc(role)}</h3>'
            f'<p class="muted">{esc(ladder.describe(c))}</p>'
            + ladder_svg(c, NARROW)
            + f'<p class="muted">{esc(ladder.summary(c))}</p>'
            + carried_html(c)
            + "</div>"
        )
    intro = (
        f"<p>The relay in the middle: {esc(a.name(a.client[0]))} connects to {esc(relay)}, and {esc(relay)} "
        f"opens a connection of its own to {esc(b.name(b.server[0]))} and passes the bytes on, both ways. "
        "Each leg's bytes are shown as the capture saw them: as text when they are, "
        "as <b>encrypted</b> when they are not (with the TLS records they were).</p>"
    )
    run = next((note for step, note in RUNS.items() if a.step.startswith(step + ":")), None)
    after = f'<p class="verdict">{esc(run)}</p>' if run else ""
    return intro + f'<div class="row">{"".join(panels)}</div>' + after


def sections(conns, others, steps):
    """Per step (task), its DNS lookups and the ladder of each of its connections."""
    exchange = dns_exchange(others)
    labels = [label for _, label in steps]
    if any(not c.step for c in conns) or not labels:
        labels.insert(0, "")
    out, nav = [], []
    for i, label in enumerate(labels):
        mine = [c for c in conns if c.step == label]
        dns = [e for e in exchange if ladder.step_at(steps, e[0]) == label]
        if not mine and not dns:
            continue
        anchor = f"step{i}"
        title = label[:1].upper() + label[1:] if label else "Connections"
        nav.append(f'<a href="#{anchor}">{esc(title.split(":")[0])}</a>')
        out.append(f'<h2 id="{anchor}">{esc(title)}</h2>')
        if dns:
            out.append(f"<h3>The DNS lookup, on {esc(dns[0][4])}</h3>")
            out.append('<p class="muted">The lab has no DNS server: the query goes to resolv.conf\'s nameserver, '
                       "and the kernel answers that nothing listens there.</p>")
            out.append(dns_svg(dns))
        pairs = ladder.legs([c for c in mine if c.source == "bridge"])
        for pair in pairs:
            out.append(legs_block(pair, conns))
        paired = {id(c) for pair in pairs for c in pair}
        for c in mine:
            if id(c) in paired:
                continue
            n = conns.index(c) + 1
            out.append(f"<h3>Connection {n} of {len(conns)}: {esc(ladder.describe(c))} [{esc(c.source)}]</h3>")
            out.append(ladder_svg(c))
            out.append(f'<p class="muted">{esc(ladder.summary(c))}</p>')
            out.append(carried_html(c))
    return nav, "".join(out)


def page(conns, others, steps, sources):
    groups = ladder.timeline_groups(conns)
    nav, body = sections(conns, others, steps)
    if groups:
        nav.insert(0, '<a href="#timelines">Timelines</a>')
    first = min([c.start for c in conns] + [t for t, *_ in dns_exchange(others)], default=None)
    when = ""
    if first is not None:
        when = datetime.datetime.fromtimestamp(first, datetime.timezone.utc).strftime(" on %Y-%m-%d at %H:%M:%S UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>The lab, replayed</title><style>{CSS}</style></head><body>"
        "<h1>The lab, replayed: every TCP connection the captures saw</h1>"
        f'<p class="muted">{len(conns)} connections, captured{esc(when)} from {esc(", ".join(sources))}. '
        "mesin1 (the server) is on the right of each ladder; tools/lab/ladder.py prints the same as text.</p>"
        f"<nav>{''.join(nav)}</nav>" + comparison(groups) + body + "</body></html>\n"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("captures", nargs="+", help="[LABEL=]FILE.pcap")
    ap.add_argument("--steps", help="file of 'EPOCH LABEL' lines (tools/lab/lab writes it)")
    ap.add_argument("--out", required=True, help="the page to write")
    args = ap.parse_args()
    where = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(where):
        print(f"report.py: cannot write {args.out}: the directory {where} does not exist", file=sys.stderr)
        return 2
    try:
        conns, others, steps = ladder.load(args.captures, args.steps)
    except ladder.CaptureError as e:
        print(f"report.py: {e}", file=sys.stderr)
        return 2
    sources = [spec.rpartition("=")[0] or spec for spec in args.captures]
    try:
        with open(args.out, "w") as f:
            f.write(page(conns, others, steps, sources))
    except OSError as e:
        print(f"report.py: cannot write {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
