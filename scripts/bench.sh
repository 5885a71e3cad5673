#!/usr/bin/env bash
# The benchmark suite (bench/run.py): starts Azurite and the exchange simulator itself and
# writes docs/benchmarks.md. ArcticDB, the baseline, lives in its own venv (.venv-bench).
# BENCH_RUNS sets the runs per measurement (default 5). Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-node
export PATH="$PWD/node_modules/.bin:$PATH"
# wrk, the load generator of bench/throughput.py (python -m bench.throughput), from Debian.
if ! command -v wrk >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -qq wrk >/dev/null || echo "could not install wrk: apt-get install wrk" >&2
fi
if [ ! -x .venv-bench/bin/python ]; then
  "$(scripts/python311.sh)" -m venv .venv-bench
  echo "*" > .venv-bench/.gitignore
fi
.venv-bench/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
# bench/run.py reads through the Python client, which lives in its own distribution.
PYTHONPATH="$PWD/clients/python${PYTHONPATH:+:$PYTHONPATH}" .venv/bin/python -m bench.run
