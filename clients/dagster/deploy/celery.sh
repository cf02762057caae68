#!/usr/bin/env bash
# The example cohort on two celery workers sharing one workspace: starts Debian's redis-server
# (installed with apt-get when missing) on a free loopback port, migrates the Dagster instance,
# starts the workers, runs a cohort job through the celery executor, prints what each worker
# did, and stops the workers and Redis.
#   clients/dagster/deploy/celery.sh [FOLDER] [--job stagerunner_generations] [--workers 2]
# FOLDER (default: a new folder under /tmp) keeps the workspace, the instance and the logs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
export STAGERUNNER_BIN="${STAGERUNNER_BIN:-$repo/.build/debug/stagerunner}"

if ! command -v redis-server >/dev/null 2>&1; then
  echo "Installing redis-server (apt)..." >&2
  sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >&2
fi
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
  folder="$1"
  shift
else
  folder="$(mktemp -d /tmp/stagerunner-celery.XXXXXX)"
fi
python="$("$here/../venv.sh" webserver,celery)"
exec "$python" "$here/deployment.py" celery "$folder" "$@"
