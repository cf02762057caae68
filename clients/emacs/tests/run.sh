#!/usr/bin/env bash
# Checks the Emacs package and runs its ERT tests against the real server.
#   clients/emacs/tests/run.sh        (from anywhere; STAGERUNNER_BIN, EMACS override)
#   STAGERUNNER_TEST_SELECTOR=conformance clients/emacs/tests/run.sh   (an ERT regexp)
# emacs (emacs-nox) and the server binary must be there. The one thing it installs is Eglot,
# for stagerunner-eglot-test.el, when Emacs has none (it is built in from Emacs 29): Debian's
# elpa-eglot package, with apt, as `make deps` installs emacs-nox.
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

# Eglot, for the test that drives the server as Eglot users do. The check loads that test
# file, which finds Eglot as the test run will (built in, or Debian's package).
eglot_check=("$emacs" --batch -Q -L "$here" --eval "(require 'stagerunner-eglot-test)")
if ! "${eglot_check[@]}" >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "Emacs has no Eglot: use Emacs 29 or later, or install Eglot 1.9+ (Debian: elpa-eglot)" >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "Installing elpa-eglot (apt), for the Eglot test..."
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq elpa-eglot
  if ! "${eglot_check[@]}" >/dev/null; then
    echo "Eglot still does not load after installing elpa-eglot" >&2
    exit 1
  fi
fi

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

# Eglot in an Emacs of its own, without the package: Eglot users need nothing of it.
timeout "${STAGERUNNER_TEST_TIMEOUT:-900}" "$emacs" --batch -Q \
  -L "$here" \
  -l stagerunner-eglot-test \
  --eval "(ert-run-tests-batch-and-exit (or (getenv \"STAGERUNNER_TEST_SELECTOR\") t))"
