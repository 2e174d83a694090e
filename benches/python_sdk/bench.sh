#!/usr/bin/env bash
# The SDK round-trip bench (issues 7 and 17): in one run, a small `Read` from a jailed python3
# agent (agentos Python SDK), from a jailed node agent (agentos TypeScript SDK), from a jailed
# Rust agent (agentos Rust SDK), and
# `StatelessKernel.execute` of the Python Agent OS (`agent-os-kernel` from PyPI, installed into
# a throwaway venv in a temp dir that is removed at the end). See benches/README.md.
#
#   bash benches/python_sdk/bench.sh [--samples 15] [--iters 2000] [--warmup 2000] [--no-stateless]
#
# Builds the release binaries first (set SKIP_BUILD=1 to reuse them) into $CARGO_TARGET_DIR
# (default: ./target). Exits 1 when the Python or the TypeScript SDK is over 2x the Rust SDK.
# --no-stateless skips the agent-os-kernel row (no venv, no download).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
# Pinned for comparable runs; override with AGENT_OS_KERNEL=agent-os-kernel==X.Y.Z.
aosk="${AGENT_OS_KERNEL:-agent-os-kernel==3.7.0}"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$root" && cargo build --release -p agentctl -p agentos-kernel -p agentos-userspace \
        -p agentos-benches --bins)
fi

tmp="$(mktemp -d -t agentos-pysdk-bench-XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
venv=()
if [[ " $* " != *" --no-stateless "* ]]; then
    python3 -m venv "$tmp/venv"
    # agent-os-kernel imports yaml without declaring it, hence PyYAML.
    "$tmp/venv/bin/pip" install --quiet --disable-pip-version-check "$aosk" "PyYAML==6.0.4"
    venv=(--venv-python "$tmp/venv/bin/python")
fi
python3 "$here/bench.py" --bin "$target/release" "${venv[@]}" --work "$tmp" "$@"
