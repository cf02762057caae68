#!/usr/bin/env bash
# Drives a real `stagerunner serve` through a short scripted exchange and prints both sides.
set -euo pipefail
if [[ -t 1 ]]; then out=$'\033[36m' in=$'\033[32m' off=$'\033[0m'; else out= in= off=; fi
binary=${1:-.build/release/stagerunner}

coproc SERVER { "$binary" serve --log-level warning; }

exchange() {
    local request=$1
    printf '%s→ %s%s\n' "$out" "$request" "$off"
    printf '%s\n' "$request" >&"${SERVER[1]}"
    if [[ $request == *'"id"'* ]]; then
        local response
        IFS= read -r response <&"${SERVER[0]}"
        printf '%s← %s%s\n' "$in" "$response" "$off"
    fi
}

echo "StageRunner $("$binary" --version | cut -d' ' -f2) over newline-delimited JSON-RPC on stdio:"
echo
exchange '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientInfo":{"name":"demo"},"protocolVersion":"1.0"}}'
exchange '{"jsonrpc":"2.0","method":"initialized"}'
exchange '{"jsonrpc":"2.0","id":2,"method":"ping","params":{"echo":"héllo ☃"}}'
exchange '{"jsonrpc":"2.0","id":3,"method":"runStage","params":{}}'
exchange '[{"jsonrpc":"2.0","id":4,"method":"ping"},{"jsonrpc":"2.0","id":5,"method":"ping","params":{"echo":[1,2,3]}}]'
exchange '{"jsonrpc":"2.0","id":6,"method":"shutdown"}'
exchange '{"jsonrpc":"2.0","method":"exit"}'
exec {SERVER[1]}>&-
wait "$SERVER_PID" && status=0 || status=$?
echo
echo "server exited with status $status"
