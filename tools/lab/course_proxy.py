#!/usr/bin/env python3
"""The course's insecure proxy, a relay in the middle: the one copy the tests and the lab use.

    course_proxy.py PORT TARGET_HOST TARGET_PORT [ADDRESS]     (listens on 0.0.0.0 by default)

Like `progjar server` and course_server.py, its first line on stdout is `listening on
ADDR:PORT`, with the real port when PORT is 0 (the tests start it that way on 127.0.0.1).

It behaves as the course's `insecure_proxy.py` does (see /work/shared/seeds/README.md):
SO_REUSEADDR, listen(1), and for each client a connection to the target and one thread per
direction, each copying recv(32) pieces with sendall and logging every one in the course's
words (Python's logging.warning, as the course has it: `WARNING:root:` on stderr):
`received data from client b'...'`, `sending to realserver b'...'`, `received data from
realserver b'...'`, `sending to client b'...'`, and `no more data` when its side ends.

What it is kept for: it never forwards a half-close. When the client sends its FIN, the
thread that copies the client's bytes logs `no more data` and stops, and the target is
never told. An echo server behind it therefore never sees the end of the data and never
closes, and a client that waits for that close waits forever (`progjar client` waits one
second after the complete echo, then says the server never closed).
"""

import logging
import signal
import socket
import sys
import threading


def copy(source, destination, received, sending):
    """One direction: recv(32) and sendall until the source ends; never pass the end on."""
    while True:
        data = source.recv(32)
        logging.warning(f"{received} {data}")
        if not data:
            logging.warning("no more data")
            break
        logging.warning(f"{sending} {data}")
        destination.sendall(data)


def relay(client_connection, target_address):
    logging.warning(f"connecting to {target_address}")
    try:
        realserver_connection = socket.create_connection(target_address)
    except OSError as e:
        # Not in the course's program (whose threads then fail on None): say why and let
        # the client go, so that it is not left waiting.
        logging.warning(f"error {e}")
        client_connection.close()
        return
    # Not in the course's program: daemon threads, so that SIGTERM ends the process while
    # a direction still waits for a side that will never end.
    for args in (
        (client_connection, realserver_connection, "received data from client", "sending to realserver"),
        (realserver_connection, client_connection, "received data from realserver", "sending to client"),
    ):
        threading.Thread(target=copy, args=args, daemon=True).start()


def serve(port, target_address, address):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    logging.warning(f"starting up on {(address, port)}")
    sock.bind((address, port))
    sock.listen(1)
    print("listening on %s:%d" % sock.getsockname(), flush=True)
    while True:
        logging.warning("waiting for a connection")
        client_connection, client_address = sock.accept()
        logging.warning(f"Incoming connection from {client_address}")
        relay(client_connection, target_address)


def main():
    # Not in the course's program: SIGTERM ends it with status 0, as it does
    # `progjar server` and course_server.py.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if len(sys.argv) not in (4, 5):
        print("usage: " + __doc__.splitlines()[2].strip(), file=sys.stderr)
        return 2
    port, target = int(sys.argv[1]), (sys.argv[2], int(sys.argv[3]))
    address = sys.argv[4] if len(sys.argv) > 4 else "0.0.0.0"
    try:
        serve(port, target, address)
    except OSError as e:
        logging.warning(f"{e}")
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
