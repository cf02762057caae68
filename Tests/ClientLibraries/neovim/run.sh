#!/usr/bin/env bash
# Conformance tests of `stagerunner serve` driven by Neovim's own JSON-RPC clients, without the
# plugin: vim.lsp.rpc.start and vim.lsp.start_client, against the real server binary. The runner
# runs every test_*.lua of this folder, in name order:
#   test_language_features.lua  the LSP features with Neovim's LSP client (buf_attach_client,
#                               vim.diagnostic, hover and completion by client.request_sync)
#   test_rpc.lua                vim.lsp.rpc.start
#   test_start_client.lua       vim.lsp.start_client
#   Tests/ClientLibraries/neovim/run.sh                 (from anywhere)
#   STAGERUNNER_BIN=/path/to/stagerunner NVIM=nvim STAGERUNNER_TEST_FILTER='rpc: ping' run.sh
# Exits 0 when every test passed, 1 when one failed (or none ran), 124 on the overall timeout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
nvim="${NVIM:-nvim}"
export STAGERUNNER_BIN="${STAGERUNNER_BIN:-$repo/.build/debug/stagerunner}"
export STAGERUNNER_REPO="$repo"

if ! command -v "$nvim" >/dev/null 2>&1; then
  echo "nvim not found (apt-get install neovim)" >&2
  exit 1
fi
if [ ! -x "$STAGERUNNER_BIN" ]; then
  echo "no server binary at $STAGERUNNER_BIN (swift build, or set STAGERUNNER_BIN)" >&2
  exit 1
fi

# A private home: no user configuration, plugin, shada or cache is read or written, and the LSP
# log (which the tests read) starts empty.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export XDG_CONFIG_HOME="$scratch/config" XDG_DATA_HOME="$scratch/data" XDG_CACHE_HOME="$scratch/cache" \
  XDG_STATE_HOME="$scratch/state" TMPDIR="$scratch"
mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_STATE_HOME"

cd "$repo"
timeout -k 10 "${STAGERUNNER_TEST_TIMEOUT:-900}" "$nvim" --headless --noplugin -i NONE -n \
  -u "$here/init.lua" -c "lua require('conformance.runner').run()" </dev/null
