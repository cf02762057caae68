#!/usr/bin/env bash
# Makes sure the Dagster venv exists with the given extras of stagerunner-dagster, and prints its
# python. Used by tests/run.sh, bench/run.sh and the deploy scripts.
#   clients/dagster/venv.sh [EXTRAS]      EXTRAS: comma-separated, default "webserver,test"
# The venv is .build/dagster-venv (DAGSTER_VENV overrides it); it is reinstalled when the extras
# asked for are new or a pyproject.toml of clients/python or clients/dagster has changed.
set -euo pipefail
package="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$package/../.." && pwd)"
venv="${DAGSTER_VENV:-$repo/.build/dagster-venv}"
extras="${1:-webserver,test}"

digest="$(cat "$package/pyproject.toml" "$repo/clients/python/pyproject.toml" | sha256sum | cut -c1-16)"
stamp="$venv/.installed-$digest-${extras//,/-}"
if [ ! -f "$stamp" ]; then
  echo "Installing stagerunner-dagster[$extras] and its pinned Dagster into $venv..." >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -e "$repo/clients/python" -e "$package[$extras]" >&2
  touch "$stamp"
fi
echo "$venv/bin/python"
