"""A network client run as a jailed agent by the egress suite (tests/tests/suite/egress.rs).

It uses nothing of agentos: Python's own ``urllib`` (which follows ``HTTP_PROXY`` and
``HTTPS_PROXY``, tunnelling HTTPS with CONNECT) and plain sockets, as an unmodified agent
would. Each mode prints one line per outcome, flushed, for the test to read.

    fetch URL [CAFILE] [--linger]   GET through the proxy: "status N BODY" or "error ..."
    hold N HOST:PORT                open N CONNECT tunnels at once, print each answer line
    bloat HOST:PORT                 a request head over the proxy's bound: its answer line
    answer URL                      a GET through the proxy on a raw socket: prints the status
                                    line, the X-Agentos-Rule header and the body, and only
                                    then closes (then lingers)
    direct HOST PORT                a TCP connection that bypasses the proxy
    bind                            listen on a TCP port of the agent's own loopback
    udp HOST PORT                   a UDP datagram (DNS-style) that bypasses the proxy
    env                             the proxy variables the agent was given
    flood HOST:PORT                 CONNECT to HOST:PORT again and again, each answer read
                                    and the connection closed, until the agent is ended
    stuff N HOST:PORT               open N CONNECT tunnels to a server that never reads and
                                    write into each until it is full; then linger
    hostile                         requests whose host holds a bidi override, then an
                                    escape sequence: their answer lines
"""

import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request


def say(line):
    print(line, flush=True)


def fetch(url, cafile=None, linger=False):
    ctx = ssl.create_default_context(cafile=cafile) if cafile else None
    try:
        with urllib.request.urlopen(url, timeout=20, context=ctx) as r:
            say(f"status {r.status} {r.read().decode().strip()}")
    except urllib.error.HTTPError as e:
        say(f"status {e.code} {e.read().decode().strip()} rule={e.headers.get('X-Agentos-Rule')}")
    except (urllib.error.URLError, OSError) as e:
        say(f"error {getattr(e, 'reason', e)}")
    if linger:
        say("lingering")
        time.sleep(60)


def hold(n, target):
    host, port = os.environ["HTTP_PROXY"].rsplit("/", 1)[-1].rsplit(":", 1)
    held = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)), timeout=20)
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        say(answer.split(b"\r\n", 1)[0].decode())
        held.append(s)
    say("held")
    time.sleep(60)


def bloat(target):
    host, port = os.environ["HTTP_PROXY"].rsplit("/", 1)[-1].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=20)
    s.sendall(f"GET http://{target}/ HTTP/1.1\r\nX-Pad: {'a' * 20000}\r\n\r\n".encode())
    say(s.makefile("rb").readline().decode().strip())


def answer(url):
    host, port = os.environ["HTTP_PROXY"].rsplit("/", 1)[-1].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=20)
    s.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    f = s.makefile("rb")
    status = f.readline().decode().strip()
    headers = {}
    while (line := f.readline().decode().strip()):
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    body = f.read(int(headers.get("content-length", "0"))).decode().strip()
    say(f"{status} | rule={headers.get('x-agentos-rule')} | {body}")
    s.close()
    time.sleep(60)


def proxy_conn():
    host, port = os.environ["HTTP_PROXY"].rsplit("/", 1)[-1].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=20)


def flood(target):
    n = 0
    while True:
        s = proxy_conn()
        s.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
        s.makefile("rb").readline()
        s.close()
        n += 1
        if n % 500 == 0:
            say(f"{n} connections")


def stuff(n, target):
    held = []
    for _ in range(n):
        s = proxy_conn()
        s.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
        s.makefile("rb").readline()
        s.setblocking(False)
        chunk = b"x" * 65536
        stalled = 0
        while stalled < 20:
            try:
                s.send(chunk)
                stalled = 0
            except BlockingIOError:
                stalled += 1
                time.sleep(0.01)
        held.append(s)
    say("stuffed")
    time.sleep(60)


def hostile():
    for host in ("ex\u202eample.com", "ex\x1b[2Jample.com"):
        s = proxy_conn()
        s.sendall(f"GET http://{host}/ HTTP/1.1\r\n\r\n".encode())
        say(s.makefile("rb").readline().decode().strip())
        s.close()


def outcome(f):
    try:
        f()
        say("ok")
    except OSError as e:
        say(f"refused {type(e).__name__} errno={e.errno}")


def main(argv):
    mode = argv[0]
    if mode == "fetch":
        rest = [a for a in argv[1:] if a != "--linger"]
        fetch(rest[0], rest[1] if len(rest) > 1 else None, "--linger" in argv)
    elif mode == "hold":
        hold(int(argv[1]), argv[2])
    elif mode == "answer":
        answer(argv[1])
    elif mode == "flood":
        flood(argv[1])
    elif mode == "stuff":
        stuff(int(argv[1]), argv[2])
    elif mode == "hostile":
        hostile()
    elif mode == "bloat":
        bloat(argv[1])
    elif mode == "direct":
        outcome(lambda: socket.create_connection((argv[1], int(argv[2])), timeout=5).close())
    elif mode == "bind":
        def listen():
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen()
        outcome(listen)
    elif mode == "udp":
        def send():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"\x00" * 12, (argv[1], int(argv[2])))
        outcome(send)
    elif mode == "env":
        for name in ("HTTP_PROXY", "https_proxy", "ALL_PROXY", "NO_PROXY"):
            say(f"{name}={os.environ.get(name)}")
        outcome(lambda: socket.create_connection(("127.0.0.1", 3128), timeout=5).close())
    else:
        say(f"unknown mode {mode}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
