#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, lint, format check, type check, tests.
# The tests start and stop Azurite and the exchange simulator themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-node
export PATH="$PWD/node_modules/.bin:$PATH"
echo "== ruff check"; .venv/bin/ruff check .
echo "== ruff format --check"; .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
echo "== infra: checkov on infra/ and .github/workflows (own venv .venv-tools)"; scripts/check-infra.sh
echo "== pytest"; .venv/bin/python -m pytest "$@"
