"""One run, four round trips of a small read (see README.md beside this file):

1. ``python-sdk``: a jailed ``python3 rtt_agent.py rtt N`` (the pure-Python agentos SDK);
2. ``ts-sdk``: a jailed ``node rtt_agent.mjs rtt N`` (the TypeScript/JavaScript agentos SDK);
3. ``rust-sdk``: a jailed ``bench-agent rtt N`` (the Rust SDK, as in the syscall_rtt bench);
4. ``agent-os StatelessKernel.execute``: the Python Agent OS (PyPI ``agent-os-kernel``),
   in-process, from the throwaway venv bench.sh made (skipped with ``--no-stateless``).

The agentos agents run under one kernel (release build, started with ``agentctl kernel
start`` on a temp state dir), strict policy allowing ``/mem/working``, flight recorder on.
Each sample spawns a fresh agent that, after one write and W untimed reads (``--warmup``, the
same W for every SDK, as criterion warms up before it measures), times N reads; Python,
TypeScript and Rust samples alternate so machine load hits them alike. Prints the medians of the per-sample
means and the Python/Rust and TypeScript/Rust ratios against the 2x budget (the TypeScript
row is left out, with a note, when ``/usr/bin/node`` is missing).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUDGET = 2.0

POLICY = """---
kernel:
  version: "1.0"
  mode: strict
signals: []
policies:
  - name: working-rw
    action: file_write
    effect: allow
    constraints:
      paths: ["/mem/working/**"]
  - name: working-ro
    action: file_read
    effect: allow
    mode: read_only
    constraints:
      paths: ["/mem/working", "/mem/working/**"]
---

# SDK round-trip bench policy
"""


class Kernel:
    def __init__(self, bins: Path, work: Path):
        self.agentctl = str(bins / "agentctl")
        self.state = work / "state"
        self.policy = work / "policy.md"
        self.policy.write_text(POLICY)
        self.ctl("kernel", "start")

    def ctl(self, *args: str) -> str:
        p = subprocess.run(
            [self.agentctl, "--state-dir", str(self.state), *args],
            capture_output=True,
            text=True,
        )
        if p.returncode != 0:
            sys.exit(f"agentctl {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
        return p.stdout

    def rtt(self, argv: list, n: int, warmup: int = 0) -> float:
        """Spawns one agent `argv + ['rtt', n, warmup]`; returns its nanoseconds per timed read."""
        agent = self.ctl("spawn", "--policy", str(self.policy), "--", *argv, "rtt", str(n), str(warmup)).strip()
        end = json.loads(self.ctl("wait", agent, "--json"))
        log = self.ctl("logs", agent)
        for line in log.splitlines():
            if line.startswith("elapsed_ns "):
                return int(line.split()[1]) / n
        sys.exit(f"agent {agent} ({' '.join(argv)}) printed no elapsed_ns; exit {end.get('exit')}:\n{log}")

    def stop(self) -> None:
        subprocess.run(
            [self.agentctl, "--state-dir", str(self.state), "kernel", "stop"],
            capture_output=True,
        )


def fmt(ns: float) -> str:
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, type=Path, help="dir with agentctl, agentos-kernel, agentos-launch, bench-agent (release)")
    ap.add_argument("--venv-python", help="python of the venv holding agent-os-kernel (required unless --no-stateless)")
    ap.add_argument("--no-stateless", action="store_true", help="skip the agent-os-kernel row (no venv needed)")
    ap.add_argument("--work", required=True, type=Path, help="a temp dir for the state dir and policy")
    ap.add_argument("--samples", type=int, default=15)
    ap.add_argument("--iters", type=int, default=2000, help="timed reads per sample")
    ap.add_argument("--warmup", type=int, default=2000,
                    help="untimed reads before them, every SDK alike (node compiles its code during the first few thousand)")
    a = ap.parse_args()
    if not a.no_stateless and not a.venv_python:
        ap.error("--venv-python is required unless --no-stateless")

    python = "/usr/bin/python3"
    py_agent = [python, str(HERE / "rtt_agent.py")]
    node = "/usr/bin/node"
    ts_agent = [node, str(HERE / "rtt_agent.mjs")] if os.path.exists(node) else None
    rust_agent = [str(a.bin / "bench-agent")]
    started = time.monotonic()
    k = Kernel(a.bin, a.work)
    py, ts, rust = [], [], []
    try:
        # One warm-up agent each (page cache, the kernel's first-spawn costs).
        k.rtt(py_agent, 100)
        if ts_agent:
            k.rtt(ts_agent, 100)
        k.rtt(rust_agent, 100)
        for _ in range(a.samples):
            py.append(k.rtt(py_agent, a.iters, a.warmup))
            if ts_agent:
                ts.append(k.rtt(ts_agent, a.iters, a.warmup))
            rust.append(k.rtt(rust_agent, a.iters, a.warmup))
    finally:
        k.stop()
    stateless, version = None, ""
    if not a.no_stateless:
        drv = subprocess.run(
            [a.venv_python, str(HERE / "stateless_driver.py"), str(a.samples), str(a.iters)],
            capture_output=True,
            text=True,
        )
        if drv.returncode != 0:
            sys.exit(f"stateless_driver.py failed: {drv.stderr.strip()}")
        stateless = json.loads(drv.stdout)
        version = subprocess.run(
            [a.venv_python, "-c", "import importlib.metadata as m; print(m.version('agent-os-kernel'))"],
            capture_output=True,
            text=True,
        ).stdout.strip()

    rows = [("agentos python-sdk read 64 B (jailed python3 agent)", py)]
    if ts:
        rows.append(("agentos ts-sdk read 64 B (jailed node agent)", ts))
    rows.append(("agentos rust-sdk read 64 B (jailed bench-agent)", rust))
    if stateless is not None:
        rows.append((f"agent-os-kernel {version} StatelessKernel.execute (in-process)", stateless))
    print()
    print(f"python_sdk_rtt: median of {a.samples} per-sample means, {a.iters} timed calls per sample "
          f"after {a.warmup} untimed ({time.monotonic() - started:.0f} s)")
    print(f"{'bench':<64} {'median':>10} {'min':>10} {'max':>10}")
    for name, v in rows:
        print(f"{name:<64} {fmt(statistics.median(v)):>10} {fmt(min(v)):>10} {fmt(max(v)):>10}")
    ok = True
    for name, v in [("python-sdk", py), ("ts-sdk", ts)]:
        if not v:
            print(f"ratio {name} / rust-sdk: not measured ({node} is missing)")
            continue
        ratio = statistics.median(v) / statistics.median(rust)
        verdict = "within" if ratio <= BUDGET else "OVER"
        ok = ok and ratio <= BUDGET
        print(f"ratio {name} / rust-sdk: {ratio:.2f}x ({verdict} the {BUDGET:g}x budget)")
    if stateless is not None:
        print(f"ratio agent-os execute / rust-sdk: {statistics.median(stateless) / statistics.median(rust):.2f}x "
              "(informational: in-process, no isolation)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
