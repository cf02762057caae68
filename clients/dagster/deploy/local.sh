#!/usr/bin/env bash
# The example cohort in Dagster's UI: copies examples/daydream into a deployment folder and runs
# `dagster dev` on it (webserver and daemon, on http://127.0.0.1:3000).
#   clients/dagster/deploy/local.sh [FOLDER]       default: a new folder under /tmp
#   PORT=3001 STAGERUNNER_BIN=/path/to/stagerunner clients/dagster/deploy/local.sh
# In the UI: materialize gen_id_partitions (or wait for gen_id_partitions_sensor), then
# materialize partitions of draft, essay and evaluation, or launch stagerunner_shards.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
export STAGERUNNER_BIN="${STAGERUNNER_BIN:-$repo/.build/debug/stagerunner}"
folder="${1:-$(mktemp -d /tmp/stagerunner-dagster.XXXXXX)}"

python="$("$here/../venv.sh" webserver)"
"$python" "$here/deployment.py" layout "$folder"
export DAGSTER_HOME="$folder/dagster-home"
echo "Workspace $folder/workspace, Dagster instance $DAGSTER_HOME" >&2
exec "$(dirname "$python")/dagster" dev -f "$folder/definitions.py" -h 127.0.0.1 -p "${PORT:-3000}"
