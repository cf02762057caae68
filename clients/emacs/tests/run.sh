#!/usr/bin/env bash
# Checks the Emacs package and runs its ERT tests against the real server.
#   clients/emacs/tests/run.sh        (from anywhere; STAGERUNNER_BIN, EMACS override)
#   STAGERUNNER_TEST_SELECTOR=conformance clients/emacs/tests/run.sh   (an ERT regexp)
# Installs nothing: emacs (emacs-nox) and the server binary must be there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
package="$(cd "$here/.." && pwd)"
repo="$(cd "$here/../../.." && pwd)"
emacs="${EMACS:-emacs}"
export STAGERUNNER_BIN="${STAGERUNNER_BIN:-$repo/.build/debug/stagerunner}"

if ! command -v "$emacs" >/dev/null 2>&1; then
  echo "emacs not found (apt-get install emacs-nox)" >&2
  exit 1
fi
if [ ! -x "$STAGERUNNER_BIN" ]; then
  echo "no server binary at $STAGERUNNER_BIN (swift build, or set STAGERUNNER_BIN)" >&2
  exit 1
fi
STAGERUNNER_BIN="$(cd "$(dirname "$STAGERUNNER_BIN")" && pwd)/$(basename "$STAGERUNNER_BIN")"

# A private home and temporary directory: no user configuration is read, and
# the workspaces the tests copy go away with it.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/home" "$scratch/tmp" "$scratch/lisp"
export HOME="$scratch/home" TMPDIR="$scratch/tmp"
export STAGERUNNER_REPO="$repo"

# The package is compiled in the scratch directory, so that the tests load the
# byte-compiled file and no .elc is left in the tree.
cp "$package/stagerunner.el" "$scratch/lisp/"
timeout 300 "$emacs" --batch -Q -l "$here/lint.el" "$scratch/lisp"

cd "$repo"
timeout "${STAGERUNNER_TEST_TIMEOUT:-900}" "$emacs" --batch -Q \
  -L "$scratch/lisp" -L "$here" \
  -l stagerunner-test-helpers \
  -l stagerunner-conformance-test \
  -l stagerunner-package-test \
  -l stagerunner-readme-test \
  --eval "(ert-run-tests-batch-and-exit (or (getenv \"STAGERUNNER_TEST_SELECTOR\") t))"
