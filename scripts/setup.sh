#!/usr/bin/env bash
# Set up a fresh machine for this repo: a Python 3.11 venv in .venv with the dev requirements,
# and (with --with-node) Azurite from npm in node_modules. Idempotent and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=$(scripts/python311.sh)

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $python_bin"
  "$python_bin" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python requirements"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

if [ "${1:-}" = "--with-node" ]; then
  command -v npm >/dev/null 2>&1 || { echo "setup: npm (Node.js 18+) is required for Azurite" >&2; exit 1; }
  if [ ! -x node_modules/.bin/azurite ]; then
    echo "setup: installing Azurite from npm"
    npm ci --no-audit --no-fund --loglevel=error
  fi
fi
