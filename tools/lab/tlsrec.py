"""TLS records in the bytes one side of a connection sent: what a capture shows of TLS
without the keys. Read by ladder.py (and so by report.py).

Every TLS byte travels in records: a 5-byte header (content type, version 3.x, length)
and at most 16 KiB of data plus what encryption adds. Before there are keys, the first
handshake messages can be read: the client's ClientHello, the server's ServerHello (and in
TLS 1.2 the certificate, and an alert). In TLS 1.3 everything after the ServerHello is
encrypted, and every record then says "application data" (type 23), whether it holds a
handshake message, data or an alert: only its size is left to see. An alert is two bytes;
encrypted, it is a record of 19 (those two, its real content type and the 16-byte tag of
AES-GCM or ChaCha20-Poly1305). That is how a client's refusal shows on the wire: where a
client that accepts the certificate sends its Finished (53 bytes with SHA-256), one that
refuses sends 19 bytes and closes.
"""

CONTENT = {20: "ChangeCipherSpec", 21: "Alert", 22: "Handshake", 23: "encrypted"}
HANDSHAKE = {
    1: "ClientHello",
    2: "ServerHello",
    4: "NewSessionTicket",
    11: "Certificate",
    12: "ServerKeyExchange",
    13: "CertificateRequest",
    14: "ServerHelloDone",
    16: "ClientKeyExchange",
}
ALERTS = {
    0: "close_notify",
    10: "unexpected_message",
    40: "handshake_failure",
    42: "bad_certificate",
    45: "certificate_expired",
    46: "certificate_unknown",
    48: "unknown_ca",
    50: "decode_error",
    70: "protocol_version",
    80: "internal_error",
}
ALERT_SIZE = 19  # an encrypted TLS 1.3 alert: 2 bytes, the content type, a 16-byte tag
MOST = 16384 + 2048  # the largest record TLS allows (data plus expansion)


class Record:
    def __init__(self, kind, length, body):
        self.kind, self.length, self.body = kind, length, body

    def encrypted(self):
        return self.kind == 23

    def alert(self):
        """Whether it is an alert: a plain one, or an encrypted record of an alert's size."""
        return self.kind == 21 or (self.kind == 23 and self.length == ALERT_SIZE)

    def name(self):
        if self.kind == 22 and self.body:
            return HANDSHAKE.get(self.body[0], f"handshake message {self.body[0]}")
        if self.kind == 21 and len(self.body) >= 2:
            level = "fatal" if self.body[0] == 2 else "warning"
            return f"Alert ({level}, {ALERTS.get(self.body[1], self.body[1])})"
        if self.kind == 23 and self.length == ALERT_SIZE:
            return f"an encrypted record of {ALERT_SIZE} B (an alert's size)"
        return CONTENT[self.kind]


def records(data):
    """The TLS records `data` is made of, or None when it does not begin with one. A record
    cut short at the end (the capture stopped) is kept as far as it goes."""
    out, at = [], 0
    while at + 5 <= len(data):
        kind, major, minor = data[at], data[at + 1], data[at + 2]
        length = int.from_bytes(data[at + 3 : at + 5], "big")
        if kind not in CONTENT or major != 3 or minor > 4 or length > MOST:
            break
        out.append(Record(kind, length, data[at + 5 : at + 5 + length]))
        at += 5 + length
    return out if out and at >= len(data) else None


def words(recs):
    """The records in words: `ClientHello, ChangeCipherSpec, 2 encrypted records`."""
    names, run = [], 0
    for r in recs + [None]:
        if r is not None and r.encrypted() and not r.alert():
            run += 1
            continue
        if run:
            names.append(f"{run} encrypted record{'s' if run > 1 else ''}")
            run = 0
        if r is not None:
            names.append(r.name())
    return ", ".join(names)


def refusal(client, server):
    """Whether a client's bytes (`client`) and its server's (`server`) show a handshake the
    client ended with an alert instead of its Finished: its ClientHello, the server's
    ServerHello, then from the client nothing but a ChangeCipherSpec and one alert."""
    mine, theirs = records(client), records(server)
    if not mine or not theirs or mine[0].name() != "ClientHello" or theirs[0].name() != "ServerHello":
        return False
    after = [r for r in mine[1:] if r.kind != 20]
    return len(after) == 1 and after[0].alert()
