"""The Python side of the SDK round-trip bench: a real agent under a real kernel.

``python3 rtt_agent.py rtt N [WARMUP]``: connects through the agentos Python SDK (the kernel's
own read-only copy, on ``PYTHONPATH``), writes a 64-byte ``/mem/working/x`` once, makes
``WARMUP`` untimed reads (default 0), then times ``N`` ``read("/mem/working/x")`` round trips
and prints ``elapsed_ns <total>`` — the same protocol as ``bench-agent rtt N [WARMUP]``
(benches/src/bin/bench-agent.rs), so the SDKs are timed alike.
"""

import sys
import time

import agentos

PATH = "/mem/working/x"


def main() -> int:
    if len(sys.argv) not in (3, 4) or sys.argv[1] != "rtt":
        print("usage: rtt_agent.py rtt N [WARMUP]", file=sys.stderr)
        return 2
    n = int(sys.argv[2])
    warmup = int(sys.argv[3]) if len(sys.argv) == 4 else 0
    c = agentos.Client.connect()
    c.write(PATH, b"\x5a" * 64)
    read = c.read
    for _ in range(warmup):
        read(PATH)
    start = time.perf_counter_ns()
    for _ in range(n):
        data = read(PATH)
    elapsed = time.perf_counter_ns() - start
    assert len(data) == 64, len(data)
    print(f"elapsed_ns {elapsed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
