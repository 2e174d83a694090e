"""Times ``StatelessKernel.execute`` of the Python Agent OS (PyPI ``agent-os-kernel``), run by
bench.py with the interpreter of the throwaway venv it was installed into.

``python stateless_driver.py SAMPLES N``: one kernel (default in-memory backend and default
policies), then SAMPLES batches of N ``execute("file_read", {"path": "/mem/working/x"},
ExecutionContext(agent_id="bench", policies=["read_only"]))`` awaited one after the other in
one event loop; prints one JSON list of per-call nanoseconds, one entry per batch. Each call is
checked to have succeeded. In-process: no socket, no sandbox, no audit log.
"""

import asyncio
import json
import sys
import time

from agent_os import StatelessKernel
from agent_os.stateless import ExecutionContext


async def main(samples: int, n: int) -> list:
    kernel = StatelessKernel()
    ctx = ExecutionContext(agent_id="bench", policies=["read_only"])
    params = {"path": "/mem/working/x"}
    execute = kernel.execute
    for _ in range(min(n, 200)):  # warm-up
        await execute("file_read", params, ctx)
    out = []
    for _ in range(samples):
        start = time.perf_counter_ns()
        for _ in range(n):
            result = await execute("file_read", params, ctx)
        out.append((time.perf_counter_ns() - start) / n)
        assert result.success, result.error
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))))
