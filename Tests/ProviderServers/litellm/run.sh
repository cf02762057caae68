#!/usr/bin/env bash
# StageRunner's OpenAI and Anthropic providers against the LiteLLM proxy with mock responses, on
# loopback only (see conftest.py).
#   Tests/ProviderServers/litellm/run.sh                 (from anywhere; extra args go to pytest)
#   STAGERUNNER_BIN=/path/to/stagerunner Tests/ProviderServers/litellm/run.sh -k rate_limit
# The first run installs requirements.txt into .build/litellm-venv (a few minutes); later runs
# reuse it until requirements.txt changes. pytest runs from the project's .venv (make venv).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
venv="${LITELLM_VENV:-$repo/.build/litellm-venv}"
python="${PYTHON:-$repo/.venv/bin/python}"
export STAGERUNNER_BIN="${STAGERUNNER_BIN:-$repo/.build/debug/stagerunner}"

if [ ! -x "$python" ]; then
  echo "no project venv at $python (make venv, or set PYTHON)" >&2
  exit 1
fi
if [ ! -x "$STAGERUNNER_BIN" ]; then
  echo "no server binary at $STAGERUNNER_BIN (swift build, or set STAGERUNNER_BIN)" >&2
  exit 1
fi

stamp="$venv/.installed-$(sha256sum "$here/requirements.txt" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "Installing $(grep -v '^#' "$here/requirements.txt" | xargs) into $venv (a few minutes)..." >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi

export LITELLM_BIN="$venv/bin/litellm"
# No __pycache__ in the source tree, no .pytest_cache (pytest.ini).
export PYTHONDONTWRITEBYTECODE=1
cd "$here"
exec timeout -k 10 "${LITELLM_TEST_TIMEOUT:-900}" "$python" -m pytest -q "$@"
