"""The example's stand-in for a remote weather API: serves this directory on 127.0.0.1 at a
port the OS picks, prints that port on its first line (so the caller knows it is listening),
and serves until it is killed."""

import functools
import http.server
import os
import sys


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


handler = functools.partial(Quiet, directory=os.path.dirname(os.path.abspath(__file__)))
with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    server.serve_forever()
