#!/usr/bin/env python3
"""The course's TLS server, made an echo server: what `progjar client --tls` is tested against.

    course_tls_server.py CERT KEY [PORT [ADDRESS]]        (default 12000 on 0.0.0.0)

Like `progjar server`, course_server.py and course_proxy.py, its first line on stdout is
`listening on ADDR:PORT`, with the real port when PORT is 0 (the tests start it that way on
127.0.0.1).

It does what the course's TLS server does (see /work/shared/seeds/README.md):
`ssl.SSLContext(PROTOCOL_TLS_SERVER)` with the certificate and key given (PEM, as
`openssl req -x509 ... -keyout domain.key -out domain.crt` writes them), and after each
accept `wrap_socket(conn, server_side=True)`; an `ssl.SSLError` (a client that refused our
certificate, a plaintext client) is logged and the server goes on to the next client. One
client at a time, as the course's. What it does with the bytes is the echo of
course_server.py instead of the course's JSON reply: recv(32) and sendall of each piece
until recv returns nothing (the client's close_notify, or its FIN), then close. Like the
course's, it closes without a close_notify of its own (Python sends one only on unwrap()).
"""

import logging
import signal
import socket
import ssl
import sys


def serve(context, port, address):
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
        try:
            connection = context.wrap_socket(connection, server_side=True)
            logging.info(f"{connection.version()} {connection.cipher()[0]}")
            while True:
                data = connection.recv(32)
                logging.info(f"received {data}")
                if not data:
                    break
                logging.info("sending back data")
                connection.sendall(data)
        except (ssl.SSLError, OSError) as e:
            logging.warning(f"error: {e}")
        logging.info("closing")
        connection.close()


def main():
    logging.basicConfig(level=logging.INFO)
    # Not in the course's program: SIGTERM ends it with status 0, as it does the others.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if len(sys.argv) not in (3, 4, 5):
        print("usage: " + __doc__.splitlines()[2].strip(), file=sys.stderr)
        return 2
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile=sys.argv[1], keyfile=sys.argv[2])
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 12000
    address = sys.argv[4] if len(sys.argv) > 4 else "0.0.0.0"
    try:
        serve(context, port, address)
    except OSError as e:
        logging.error(f"{e}")
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
