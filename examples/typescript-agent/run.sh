#!/usr/bin/env bash
# Runs the TypeScript example agent under `agentctl run`, with its workspace
# (examples/typescript-agent/workspace, read-only for the agent and its tools) and the name
# `typescript-agent`, which keys its episodic memory: with the same --state-dir, a second run
# remembers the first. Nothing is installed: the kernel preloads its own copy of the `agentos`
# package for `node` in the jail.
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
command -v node >/dev/null || { echo "run.sh: node not found; install Node >= 18.19 (Debian: apt-get install nodejs)" >&2; exit 2; }

"$agentctl" run --name typescript-agent \
    --policy "$here/.agents/security.md" \
    --workspace "$here/workspace" \
    "$@" -- node "$here/agent.mjs"
