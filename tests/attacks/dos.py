"""The Python DoS agent: `python3 dos.py ATTACK [ARG]`.

The Python twin of `agentos-test-agent dos` (agentos_tests::dos_modes): one hostile agent that
keeps attacking through the pure-Python SDK until it is killed. It prints `attacking` once the
attack is under way, and `attack over: ...` if the kernel ends it. Attacks:

- `fifo PATH`: 8 threads Read and Write a FIFO in the workspace, without end;
- `long-path`: Writes under /mem/working with 1 MiB paths;
- `checkpolicy-flood`: 4 threads of CheckPolicy with 1 MiB action and resource;
- `stdout-flood`: 1 MiB writes to stdout, without end.
"""

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
