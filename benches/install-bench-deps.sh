#!/usr/bin/env bash
# Installs what the benches compare agentos against and that the workspace does not build:
# bubblewrap (`bwrap`), for `floor/bwrap_true` in the spawn bench. Debian/Ubuntu, as root
# (or with sudo). Safe to run again: does nothing when bwrap is already installed.
set -euo pipefail

if command -v bwrap >/dev/null 2>&1; then
    echo "install-bench-deps: bwrap already installed ($(command -v bwrap))"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y bubblewrap; then
    # A machine whose package lists were never fetched finds nothing: update once, retry.
    $SUDO apt-get update
    $SUDO apt-get install -y bubblewrap
fi
echo "install-bench-deps: installed $(command -v bwrap)"
