"""A Python agent under agentos that does its work through the kernel: it reads its workspace,
runs a tool with `exec`, fetches data with an `api_call` through the HTTP provider, keeps notes
in working and episodic memory, and shuts down cleanly on SIGTERM.

    bash examples/python-agent/run.sh

(`run.sh` gives it its workspace, the `api_call` provider and a small loopback API; see there.)
The kernel puts its own read-only copy of the `agentos` package on PYTHONPATH, so nothing
needs installing (and the agent must not run under `python3 -I`, which ignores PYTHONPATH).
"""

import csv
import io
import json
import os
import sys
import threading

import agentos
from agentos import Signal

stop = threading.Event()


def main() -> int:
    client = agentos.Client.connect()
    print(f"agent {client.agent_id} connected (sdk {agentos.SDK_NAME})", flush=True)
    client.on_signal(Signal.TERM, lambda sig, reason: (print(f"got {sig.signame} ({reason}): finishing up", flush=True), stop.set()))

    # The workspace: a host directory the kernel serves (beneath it, no symlink leaves it).
    names = sorted(e.name for e in client.list("/workspace"))
    print(f"workspace: {', '.join(names)}", flush=True)
    rows = list(csv.DictReader(io.StringIO(client.read_text("/workspace/observations.csv"))))
    warmest = max(rows, key=lambda r: int(r["temp_c"]))
    print(f"observations: {len(rows)} rows; warmest {warmest['city']} on {warmest['day']} ({warmest['temp_c']} C)", flush=True)

    # A tool in a jail of its own, with the workspace mounted read-only.
    out = client.exec(["/usr/bin/wc", "-l", "/workspace/observations.csv"])
    print(f"exec wc -l: {out.stdout.decode().split()[0]} lines (status {out.status}, {out.duration_ms} ms)", flush=True)

    # An api_call: the kernel checks the host against the policy, then the HTTP provider fetches.
    url = os.environ.get("WEATHER_URL", "http://127.0.0.1/weather.json")
    result = json.loads(client.call("api_call", json.dumps({"url": url})))
    weather = json.loads(result["body"])
    print(f"api_call: HTTP {result['status']}: {weather['city']} {weather['temp_c']} C, {weather['sky']}", flush=True)

    # Working memory holds this run's notes; episodic memory outlives the run.
    client.write("/mem/working/notes/summary.md", f"warmest: {warmest['city']}\nnow: {weather['temp_c']} C\n")
    earlier = sorted(e.name for e in client.list("/mem/episodic/runs")) if _exists(client, "/mem/episodic/runs") else []
    run = len(earlier) + 1
    client.write(f"/mem/episodic/runs/{run:04}.md", f"run {run}: {len(rows)} observations, Paris now {weather['temp_c']} C\n")
    print(f"episodic: {len(earlier)} earlier runs remembered; this is run {run}", flush=True)

    # Ask the policy before acting: a dry run is never a violation.
    d = client.check_policy("file_write", "/workspace/observations.csv")
    print(f"policy: writing the workspace is {'allowed' if d.allowed else 'denied'} ({d.rule or 'default deny'})", flush=True)

    print("done", flush=True)
    client.announce_exit(0)
    return 0


def _exists(client: agentos.Client, path: str) -> bool:
    try:
        client.stat(path)
        return True
    except agentos.NotFound:
        return False


if __name__ == "__main__":
    try:
        sys.exit(main())
    except agentos.PermissionDenied as e:
        print(f"denied: {e}", file=sys.stderr, flush=True)
        sys.exit(3)
