"""The Python side of the SDK round-trip bench: a real agent under a real kernel.

``python3 rtt_agent.py rtt N``: connects through the agentos Python SDK (the kernel's own
read-only copy, on ``PYTHONPATH``), writes a 64-byte ``/mem/working/x`` once, then times ``N``
``read("/mem/working/x")`` round trips and prints ``elapsed_ns <total>`` — the same protocol
as ``bench-agent rtt N`` (benches/src/bin/bench-agent.rs), so both SDKs are timed alike.
"""

import sys
import time

import agentos

PATH = "/mem/working/x"


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] != "rtt":
        print("usage: rtt_agent.py rtt N", file=sys.stderr)
        return 2
    n = int(sys.argv[2])
    c = agentos.Client.connect()
    c.write(PATH, b"\x5a" * 64)
    read = c.read
    start = time.perf_counter_ns()
    for _ in range(n):
        data = read(PATH)
    elapsed = time.perf_counter_ns() - start
    assert len(data) == 64, len(data)
    print(f"elapsed_ns {elapsed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
