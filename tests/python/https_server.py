"""Python's own HTTP server behind TLS, for the egress suite: serves DIR on ADDR (a free
port), with CERT and KEY; prints "Serving HTTPS on ADDR port PORT" once it listens."""

import functools
import http.server
import ssl
import sys


def main(addr, directory, cert, key):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    server = http.server.ThreadingHTTPServer((addr, 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"Serving HTTPS on {addr} port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:5])
