"""The Python DoS agent: `python3 dos.py ATTACK [ARG]`.

The Python twin of `agentos-test-agent dos` (agentos_tests::dos_modes): one hostile agent that
keeps attacking through the pure-Python SDK until it is killed. It prints `attacking` once the
attack is under way, and `attack over: ...` if the kernel ends it. Attacks:

- `fifo PATH`: 8 threads Read and Write a FIFO in the workspace, without end;
- `long-path`: Writes under /mem/working with 1 MiB paths;
- `checkpolicy-flood`: 4 threads of CheckPolicy with 1 MiB action and resource;
- `stdout-flood`: 1 MiB writes to stdout, without end;
- `big-exec`: Exec of /bin/true with a 15 MiB argument, without end;
- `long-names`: files with 255-byte names in working memory until the quota refuses, then on;
- `scratch-fill`: 1 MiB files in $TMPDIR until the host refuses, then keeps trying;
- `checkpoint-flood`: Checkpoint without end.
"""

import os

import sys
import threading

import agentos


def forever(fn):
    while True:
        try:
            fn()
        except agentos.AgentOSError:
            pass


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    arg = sys.argv[2] if len(sys.argv) > 2 else None
    client = agentos.Client.connect()
    if name == "fifo":
        path = arg or "/workspace/fifo"

        def both():
            try:
                client.read(path)
            except agentos.AgentOSError:
                pass
            client.write(path, b"x")

        for _ in range(8):
            threading.Thread(target=forever, args=(both,), daemon=True).start()
    elif name == "long-path":
        long = "/mem/working/" + "n" * (1 << 20)
        threading.Thread(
            target=forever, args=(lambda: client.write(long, b"x"),), daemon=True
        ).start()
    elif name == "checkpolicy-flood":
        long = "r" * (1 << 20)
        for _ in range(4):
            threading.Thread(
                target=forever,
                args=(lambda: client.check_policy(long, long),),
                daemon=True,
            ).start()
    elif name == "big-exec":
        arg = "A" * (15 << 20)
        threading.Thread(
            target=forever,
            args=(lambda: client.exec(["/bin/true", arg]),),
            daemon=True,
        ).start()
    elif name == "long-names":
        counter = iter(range(1 << 62))

        def one():
            client.write("/mem/working/%020d%s" % (next(counter), "n" * 235), b"")

        threading.Thread(target=forever, args=(one,), daemon=True).start()
    elif name == "scratch-fill":
        tmp = os.environ.get("TMPDIR", "/tmp")
        chunk = b"B" * (1 << 20)

        def fill():
            i = 0
            while True:
                try:
                    with open(os.path.join(tmp, "fill-%d" % (i % 100000)), "wb") as f:
                        for _ in range(16):
                            f.write(chunk)
                except OSError:
                    pass
                i += 1

        threading.Thread(target=fill, daemon=True).start()
    elif name == "checkpoint-flood":
        threading.Thread(target=forever, args=(client.checkpoint,), daemon=True).start()
    elif name == "stdout-flood":
        print("attacking", flush=True)
        chunk = "o" * (1 << 20)
        try:
            while True:
                sys.stdout.write(chunk)
        except OSError as e:
            print(f"attack over: {e}", flush=True)
            threading.Event().wait()
    else:
        print(f"unknown dos attack `{name}`", flush=True)
        return 64
    print("attacking", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
