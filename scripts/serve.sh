#!/usr/bin/env bash
# Run the service locally on http://127.0.0.1:7071 (the port `func start` uses) with the
# local-disk store in ./data. Set-up happens on the first run. Any CBTRADE_* variable already
# in the environment wins over the defaults below.
#   scripts/serve.sh               real exchanges (needs internet)
#   scripts/serve.sh --simulator   the bundled exchange simulator (offline demo)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

export CBTRADE_STORAGE_BACKEND="${CBTRADE_STORAGE_BACKEND:-local}"
export CBTRADE_LOCAL_STORAGE_ROOT="${CBTRADE_LOCAL_STORAGE_ROOT:-./data}"
export CBTRADE_API_KEYS="${CBTRADE_API_KEYS:-dev-local-key}"
export CBTRADE_CONTINUATION_TOKEN_SECRET="${CBTRADE_CONTINUATION_TOKEN_SECRET:-dev-local-token-secret-change-me}"
host="${HOST:-127.0.0.1}"
port="${PORT:-7071}"

example_start="2024-01-01T00:00:00Z"
example_end="2024-01-01T06:00:00Z"
if [ "${1:-}" = "--simulator" ]; then
  sim_port="${SIMULATOR_PORT:-9000}"
  .venv/bin/python -m tests.exchange_simulator --host 127.0.0.1 --port "$sim_port" &
  sim_pid=$!
  trap 'kill "$sim_pid" 2>/dev/null || true' EXIT
  origin="http://127.0.0.1:$sim_port"
  export CBTRADE_EXCHANGE_URL_OVERRIDES="{\"cryptocom\": \"$origin\", \"binance\": \"$origin\", \"kraken\": \"$origin\", \"coinbase\": \"$origin\"}"
  example_start="$(date -u -d '-1 day' +%Y-%m-%dT%H:00:00Z)"
  example_end="$(date -u -d '-18 hours' +%Y-%m-%dT%H:00:00Z)"
fi

key="${CBTRADE_API_KEYS%%,*}"
cat <<MSG
cb-trade data service on http://$host:$port  (docs: http://$host:$port/api/docs)
Try:
  curl -s -H "Authorization: Bearer $key" \\
    "http://$host:$port/api/v1/ohlcv?exchange=cryptocom&symbol=BTC/USD&timeframe=5m&start=$example_start&end=$example_end"
MSG
.venv/bin/uvicorn --factory cbtrade.api:create_app --host "$host" --port "$port" --no-access-log
