#!/usr/bin/env python3
"""The course's own echo server, one client at a time: the contrast to `progjar server`.

    course_server.py [PORT [ADDRESS]]        (default 10000 on 0.0.0.0)

Like `progjar server`, its first line on stdout is `listening on ADDR:PORT`, with the real
port when PORT is 0 (the tests start it that way on 127.0.0.1).

It behaves as the course's program does (see /work/shared/seeds/README.md): SO_REUSEADDR,
listen(1), accept, then recv(32) and sendall of each piece until recv returns nothing,
close, and only then accept the next client. While one client is served, the next one's
handshake completes in the kernel's backlog and its data waits there: `lab replay` runs
task 4 against it so that the capture shows mesin3 waiting until mesin2 leaves. The log
lines are the course's (Python logging, `INFO:root:` on stderr).
"""

import logging
import signal
import socket
import sys


def serve(port, address):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server_address = (address, port)
    logging.info(f"starting up on {server_address}")
    sock.bind(server_address)
    sock.listen(1)
    print("listening on %s:%d" % sock.getsockname(), flush=True)
    while True:
        logging.info("waiting for a connection")
        connection, client_address = sock.accept()
        logging.info(f"connection from {client_address}")
        while True:
            data = connection.recv(32)
            logging.info(f"received {data}")
            if not data:
                break
            logging.info("sending back data")
            connection.sendall(data)
        logging.info("closing")
        connection.close()


def main():
    logging.basicConfig(level=logging.INFO)
    # Not in the course's program: SIGTERM ends it with status 0, as it does
    # `progjar server`, so that the lab stops both the same way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    address = sys.argv[2] if len(sys.argv) > 2 else "0.0.0.0"
    try:
        serve(port, address)
    except OSError as e:
        logging.error(f"{e}")
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
