#!/usr/bin/env bash
# The Dagster integration's tests, in their own venv (Dagster is large and pinned; the project's
# .venv stays small).
#   clients/dagster/tests/run.sh                     (from anywhere; extra args go to pytest)
#   clients/dagster/tests/run.sh --e2e               the celery deployment (needs redis-server)
#   STAGERUNNER_BIN=/path/to/stagerunner clients/dagster/tests/run.sh -k shard
# The first run installs Dagster (pinned in clients/dagster/pyproject.toml), pytest and the two
# packages, editable, into .build/dagster-venv (under a minute); later runs reuse it until a
# pyproject.toml changes. --e2e adds the celery extra.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
package="$(cd "$here/.." && pwd)"
repo="$(cd "$package/../.." && pwd)"
export STAGERUNNER_BIN="${STAGERUNNER_BIN:-$repo/.build/debug/stagerunner}"

extras="webserver,test"
pytest_args=()
for arg in "$@"; do
  if [ "$arg" = "--e2e" ]; then
    extras="webserver,test,celery"
    pytest_args+=(-m e2e)
  else
    pytest_args+=("$arg")
  fi
done

if [ ! -x "$STAGERUNNER_BIN" ]; then
  echo "no server binary at $STAGERUNNER_BIN (swift build, or set STAGERUNNER_BIN)" >&2
  exit 1
fi
python="$("$package/venv.sh" "$extras")"

# No __pycache__ in the source tree; Dagster's instance lives in a temporary DAGSTER_HOME per test.
export PYTHONDONTWRITEBYTECODE=1
cd "$package"
exec timeout -k 10 "${DAGSTER_TEST_TIMEOUT:-900}" "$python" -m pytest -q "${pytest_args[@]}"
