#!/usr/bin/env bash
# The Dagster integration's benchmark (bench.py), in the Dagster venv.
#   clients/dagster/bench/run.sh [--generations 1000] [other options of bench.py]
# STAGERUNNER_BIN names the server (default: the debug build).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
export STAGERUNNER_BIN="${STAGERUNNER_BIN:-$repo/.build/debug/stagerunner}"
if [ ! -x "$STAGERUNNER_BIN" ]; then
  echo "no server binary at $STAGERUNNER_BIN (swift build, or set STAGERUNNER_BIN)" >&2
  exit 1
fi
python="$("$here/../venv.sh" webserver,test)"
export PYTHONDONTWRITEBYTECODE=1
exec "$python" "$here/bench.py" "$@"
