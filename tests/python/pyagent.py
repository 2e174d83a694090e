"""The Python test agent: one mode per integration test in tests/tests/suite/python.rs.
Prints one line per step; the Rust test reads them from the agent's log."""

import asyncio
import sys
import threading
import time

import agentos
from agentos import Signal, abi


def say(line: str) -> None:
    print(line, flush=True)


def outcome(name: str, fn) -> None:
    try:
        say(f"{name}: ok {fn()}")
    except agentos.AgentOSError as e:
        say(f"{name}: err {type(e).__name__} errno={e.errno}")


def tour(c: agentos.Client, peer: int) -> None:
    outcome("write", lambda: c.write("/mem/working/b.txt", b"hello"))
    outcome("append", lambda: c.append("/mem/working/b.txt", "!"))
    outcome("read", lambda: c.read("/mem/working/b.txt").decode())
    outcome("read_at", lambda: c.read_at("/mem/working/b.txt", 1, 3).decode())
    outcome("stat", lambda: (lambda s: f"{s.kind.name} {s.size}")(c.stat("/mem/working/b.txt")))
    outcome("list", lambda: ",".join(e.name for e in c.list("/mem/working")))
    outcome("create_new", lambda: c.create_new("/mem/working/b.txt", b"x"))
    outcome("check_allowed", lambda: (lambda d: f"{d.allowed} {d.rule}")(c.check_policy("file_write", "/mem/working/z")))
    outcome("check_denied", lambda: c.check_policy("file_write", "/etc/passwd").allowed)
    outcome("unlink", lambda: c.unlink("/mem/working/b.txt"))
    outcome("stat_gone", lambda: c.stat("/mem/working/b.txt"))
    outcome("exec", lambda: (lambda o: f"{o.status} {o.stdout.decode().strip()}")(c.exec(["/bin/echo", "hi"])))
    outcome("call", lambda: c.call("api_call", '{"url": "http://127.0.0.1:9/"}'))
    outcome("send", lambda: c.send(peer, b"ping"))
    outcome("recv", lambda: c.recv(10))
    outcome("open", lambda: c.open("/mem/working/b.txt", abi.OpenMode.Read()))
    outcome("close", lambda: c.close(3))
    outcome("read_fd", lambda: c.read_fd(3, 10))
    outcome("write_fd", lambda: c.write_fd(3, b"x"))
    outcome("checkpoint", lambda: c.checkpoint())
    outcome("signal", lambda: c.signal(peer, Signal.USR1))
    outcome("signal_missing", lambda: c.signal(999999, Signal.USR1))
    outcome("exit", lambda: c.announce_exit(0))
    # Several threads with calls in flight on the one connection.
    errors = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                c.write(f"/mem/working/t{n}", str(i).encode())
                assert c.read(f"/mem/working/t{n}") == str(i).encode()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    say(f"threads: {'ok' if not errors else errors}")
    say("tour done")


def violate(c: agentos.Client) -> None:
    try:
        c.write("/mem/working/forbidden/x", b"no")
        say("violation was allowed?!")
    except agentos.PermissionDenied as e:
        say(f"PermissionDenied errno={e.errno} rule={e.rule!r} reason={e.reason!r}")
    time.sleep(30)  # SIGPOLICY ends us first
    say("still alive?!")


def burst(c: agentos.Client, n: int, path: str) -> None:
    for i in range(1, n + 1):
        try:
            c.write(path, b"x")
            say(f"call {i}: ok")
        except agentos.RateLimited as e:
            say(f"call {i}: RateLimited retry_after_ms={e.retry_after_ms} errno={e.errno}")
            time.sleep(e.retry_after_ms / 1000 + 0.05)
            c.write(path, b"x")
            say("after hint: ok")


def term(c: agentos.Client) -> None:
    def handler(sig: Signal, reason: str) -> None:
        say(f"handler ran for {sig.signame} ({reason})")
        c.write("/mem/working/goodbye", b"clean")
        say("clean shutdown")
        c.exit(0)

    c.on_signal(Signal.TERM, handler)
    say("ready")
    while True:
        time.sleep(1)


def malformed(c: agentos.Client) -> None:
    limit = c.max_frame
    for name, fn in [
        ("oversized", lambda: c.write("/mem/working/big", b"x" * (limit + 1))),
        ("path_type", lambda: c.write(42, b"x")),  # type: ignore[arg-type]
        ("data_type", lambda: c.write("/mem/working/a", 3.5)),  # type: ignore[arg-type]
        ("fd_range", lambda: c.close(-1)),
        ("u64_range", lambda: c.read_at("/mem/working/a", 1 << 64, 1)),
        ("argv_str", lambda: c.exec("/bin/echo hi")),  # type: ignore[arg-type]
        ("signal_type", lambda: c.signal(1, 15)),  # type: ignore[arg-type]
        ("surrogate", lambda: c.write("/mem/working/\udc80", b"x")),
    ]:
        try:
            fn()
            say(f"{name}: sent?!")
        except (TypeError, ValueError) as e:
            kind = "TooLarge" if isinstance(e, agentos.TooLarge) else type(e).__name__
            say(f"{name}: {kind}: {e}")
    # The connection is intact and the kernel saw nothing wrong.
    say(f"after: ok {c.write('/mem/working/after', b'fine')}")


def rename(c: agentos.Client) -> None:
    outcome("write", lambda: c.write("/mem/working/py-a", b"moved by python"))
    outcome("rename", lambda: c.rename("/mem/working/py-a", "/mem/working/sub/py-b"))
    outcome("read", lambda: c.read("/mem/working/sub/py-b").decode())
    outcome("stat_old", lambda: c.stat("/mem/working/py-a"))
    outcome("across", lambda: c.rename("/mem/working/sub/py-b", "/mem/episodic/py-c"))
    outcome("missing", lambda: c.rename("/mem/working/nope", "/mem/working/py-d"))
    say("rename done")


async def many_async(n: int) -> None:
    c = await agentos.AsyncClient.connect()
    await asyncio.gather(*[c.write(f"/mem/working/a{i}", str(i)) for i in range(n)])
    back = await asyncio.gather(*[c.read(f"/mem/working/a{i}") for i in range(n)])
    ok = sum(1 for i, b in enumerate(back) if b == str(i).encode())
    say(f"async ok {ok}/{n}")


def main() -> int:
    mode, rest = sys.argv[1], sys.argv[2:]
    if mode == "async":
        asyncio.run(many_async(int(rest[0])))
        return 0
    c = agentos.Client.connect()
    if mode == "tour":
        tour(c, int(rest[0]))
    elif mode == "rename":
        rename(c)
    elif mode == "violate":
        violate(c)
    elif mode == "burst":
        burst(c, int(rest[0]), rest[1])
    elif mode == "term":
        term(c)
    elif mode == "malformed":
        malformed(c)
    elif mode == "pong":
        for _ in range(int(rest[0])):
            m = c.recv()
            text = m.payload.decode()
            say(f"got {text} from {int(m.from_)} seq {m.seq}")
            c.send(m.from_, text.replace("ping", "pong").encode())
        say("pong done")
    elif mode == "park":
        c.write("/mem/working/ready", b"1")
        say("ready")
        time.sleep(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
