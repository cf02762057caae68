#!/usr/bin/env bash
# Runs the Neovim plugin's tests headless against the real server.
#   clients/neovim/tests/run.sh            (from anywhere; STAGERUNNER_BIN, NVIM override)
#   STAGERUNNER_TEST_FILTER=validate clients/neovim/tests/run.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
nvim="${NVIM:-nvim}"
export STAGERUNNER_BIN="${STAGERUNNER_BIN:-$repo/.build/debug/stagerunner}"

if ! command -v "$nvim" >/dev/null 2>&1; then
  echo "nvim not found (apt-get install neovim)" >&2
  exit 1
fi
if [ ! -x "$STAGERUNNER_BIN" ]; then
  echo "no server binary at $STAGERUNNER_BIN (swift build, or set STAGERUNNER_BIN)" >&2
  exit 1
fi

# A private home: no user configuration, shada or cache is read or written.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export XDG_CONFIG_HOME="$scratch/config" XDG_DATA_HOME="$scratch/data" XDG_CACHE_HOME="$scratch/cache" \
  XDG_STATE_HOME="$scratch/state" TMPDIR="$scratch"

cd "$repo"
timeout "${STAGERUNNER_TEST_TIMEOUT:-600}" "$nvim" --headless --noplugin -i NONE -n \
  -u "$here/minimal_init.lua" -c "lua require('runner').run()" </dev/null
