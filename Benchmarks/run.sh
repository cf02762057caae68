#!/usr/bin/env bash
# JSON-RPC transport benchmark: stagerunner serve vs cat vs two Python JSON-RPC stacks.
#
# usage: Benchmarks/run.sh [STAGERUNNER_PATH] [-- extra rpc-bench options]
#   STAGERUNNER_PATH defaults to $STAGERUNNER, then <repo>/.build/release/stagerunner.
#   A missing binary or Python peer becomes an "unavailable" row, not a failure.
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$bench_dir/.." && pwd)"

stagerunner="${STAGERUNNER:-$repo_root/.build/release/stagerunner}"
if [[ $# -gt 0 && "$1" != "--" ]]; then
    stagerunner="$1"
    shift
fi
[[ "${1:-}" == "--" ]] && shift
# A bare name (no slash) is looked up on PATH, like the shell would.
if [[ "$stagerunner" != */* ]]; then
    stagerunner="$(command -v "$stagerunner" || echo "$stagerunner")"
fi
extra_args=("$@")

venv="$bench_dir/.venv"
python="$venv/bin/python"
pylsp_version="1.1.2"
pygls_version="2.1.1"
jinja2_version="3.1.6"
jsonschema_version="4.26.0"
openai_version="3.54.0"

# Prints the installed version of a distribution, or nothing.
installed_version() {
    "$python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true
}

# Creates or reuses the venv; pip runs only when a pinned version is missing, so reruns work offline.
setup_venv() {
    if [[ ! -x "$python" ]]; then
        echo "run.sh: creating $venv" >&2
        python3 -m venv "$venv" || return 1
    fi
    if [[ "$(installed_version python-lsp-jsonrpc)" != "$pylsp_version" ||
          "$(installed_version pygls)" != "$pygls_version" ||
          "$(installed_version jinja2)" != "$jinja2_version" ||
          "$(installed_version jsonschema)" != "$jsonschema_version" ||
          "$(installed_version openai)" != "$openai_version" ]]; then
        echo "run.sh: installing python-lsp-jsonrpc==$pylsp_version pygls==$pygls_version and the peers of the stage, task and model benchmarks" >&2
        "$python" -m pip install --quiet --disable-pip-version-check \
            "python-lsp-jsonrpc==$pylsp_version" "pygls==$pygls_version" "jinja2==$jinja2_version" \
            "jsonschema==$jsonschema_version" "openai==$openai_version" >&2 || return 1
    fi
}

venv_note=""
if ! setup_venv; then
    venv_note=" (venv setup failed; see messages above)"
fi

echo "run.sh: building rpc-bench (release)" >&2
swift build -c release --package-path "$bench_dir" >&2
bin_dir="$(swift build -c release --package-path "$bench_dir" --show-bin-path)"

targets=()
if [[ -x "$stagerunner" ]]; then
    targets+=(--lsp "stagerunner serve" "$stagerunner" serve ";")
    targets+=(--ndjson "stagerunner serve (ndjson)" "$stagerunner" serve --framing ndjson ";")
else
    reason="not built: $stagerunner is missing (make release, or pass a path / set STAGERUNNER)"
    targets+=(--unavailable "stagerunner serve" "$reason")
    targets+=(--unavailable "stagerunner serve (ndjson)" "$reason")
fi

targets+=(--lsp cat cat ";")

# Each Python row needs its own package importable at the pinned version.
add_python_peer() {
    local label="$1" dist="$2" version="$3" script="$4"
    local have
    have="$(installed_version "$dist")"
    if [[ "$have" == "$version" ]]; then
        targets+=(--lsp "$label" "$python" "$bench_dir/peers/$script" ";")
    else
        targets+=(--unavailable "$label" "$dist $version not installed in Benchmarks/.venv$venv_note")
    fi
}
add_python_peer "python-lsp-jsonrpc $pylsp_version" python-lsp-jsonrpc "$pylsp_version" pylsp_jsonrpc_ping.py
add_python_peer "pygls $pygls_version" pygls "$pygls_version" pygls_ping.py

exec "$bin_dir/rpc-bench" --baseline cat --subject stagerunner "${targets[@]}" "${extra_args[@]}"
