#!/usr/bin/env bash
# Runs the Python example agent under `agentctl run`, with everything it uses:
#   - its workspace (examples/python-agent/workspace, read-only for the agent and its tools),
#   - the HTTP tool provider (examples/providers/http_fetch.py) for its `api_call`,
#   - a small API on 127.0.0.1 standing in for a remote weather service (api/serve.py),
#   - the name `python-agent`, which keys its episodic memory: with the same --state-dir,
#     a second run remembers the first.
# Extra arguments are passed to `agentctl run` (e.g. --state-dir DIR, --json).
# AGENTCTL overrides the agentctl binary (default: target/release/agentctl).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
agentctl=${AGENTCTL:-$root/target/release/agentctl}
if [[ ! -x $agentctl ]]; then
    echo "run.sh: $agentctl not found; build it first: cargo build --release" >&2
    exit 2
fi

coproc API { exec python3 -u "$here/api/serve.py"; }
api_pid=$API_PID
trap 'kill "$api_pid" 2>/dev/null || true' EXIT
read -r port <&"${API[0]}" || { echo "run.sh: the example API did not start" >&2; exit 1; }

"$agentctl" run --name python-agent \
    --policy "$here/.agents/security.md" \
    --workspace "$here/workspace" \
    --provider "api_call=$root/examples/providers/http_fetch.py,network" \
    --env "WEATHER_URL=http://127.0.0.1:$port/weather.json" \
    "$@" -- python3 "$here/agent.py"
