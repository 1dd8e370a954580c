#!/usr/bin/env bash
# Runs the OpenID Connect conformity harness against a server binary.
# Usage: conformity/run.sh [path-to-hydra-binary] [run.py options...]
# The binary may also be given as HYDRA_BIN; default: target/debug/hydra (relative to the repo root).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
bin="${HYDRA_BIN:-$repo/target/debug/hydra}"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  bin="$1"
  shift
fi
# A relative binary path is taken relative to the directory the script was called from.
exec "$venv/bin/python" "$here/run.py" "$bin" "$@"
