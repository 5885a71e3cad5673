#!/usr/bin/env bash
# Run the service locally on http://127.0.0.1:7071 (the port `func start` uses) with the
# local-disk store in ./data. Set-up happens on the first run. Any CBTRADE_* variable already
# in the environment wins over the defaults below, except that --azurite always sets the
# storage backend to azure and drains the queues in-process.
#   scripts/serve.sh                          real exchanges (needs internet)
#   scripts/serve.sh --simulator              the bundled exchange simulator (offline demo)
#   scripts/serve.sh --azurite [--simulator]  Azurite (blob + queue) instead of local disk, with
#                                             the work queue drained in-process (backfill jobs)
set -euo pipefail
cd "$(dirname "$0")/.."

use_simulator=false
use_azurite=false
for arg in "$@"; do
  case "$arg" in
    --simulator) use_simulator=true ;;
    --azurite) use_azurite=true ;;
    *) echo "serve.sh: unknown option $arg (use --simulator and/or --azurite)" >&2; exit 2 ;;
  esac
done

if $use_azurite; then scripts/setup.sh --with-node; else scripts/setup.sh; fi

export CBTRADE_STORAGE_BACKEND="${CBTRADE_STORAGE_BACKEND:-local}"
export CBTRADE_LOCAL_STORAGE_ROOT="${CBTRADE_LOCAL_STORAGE_ROOT:-./data}"
export CBTRADE_API_KEYS="${CBTRADE_API_KEYS:-dev-local-key}"
export CBTRADE_CONTINUATION_TOKEN_SECRET="${CBTRADE_CONTINUATION_TOKEN_SECRET:-dev-local-token-secret-change-me}"
host="${HOST:-127.0.0.1}"
port="${PORT:-7071}"
children=()
trap 'for pid in "${children[@]}"; do kill "$pid" 2>/dev/null || true; done' EXIT

# Wait until something listens on 127.0.0.1:$1, or give up naming $2 (the process $3 died).
wait_for_port() {
  for _ in $(seq 1 100); do
    if ! kill -0 "$3" 2>/dev/null; then
      echo "serve.sh: $2 did not start (is port $1 in use?)" >&2; exit 1
    fi
    if (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "serve.sh: $2 did not listen on port $1 within 10 s" >&2; exit 1
}

example_start="2024-01-01T00:00:00Z"
example_end="2024-01-01T06:00:00Z"
if $use_simulator; then
  sim_port="${SIMULATOR_PORT:-9000}"
  .venv/bin/python -m tests.exchange_simulator --host 127.0.0.1 --port "$sim_port" &
  children+=($!)
  wait_for_port "$sim_port" "the exchange simulator" "$!"
  origin="http://127.0.0.1:$sim_port"
  export CBTRADE_EXCHANGE_URL_OVERRIDES="{\"cryptocom\": \"$origin\", \"binance\": \"$origin\", \"kraken\": \"$origin\", \"coinbase\": \"$origin\"}"
  example_start="$(date -u -d '-1 day' +%Y-%m-%dT%H:00:00Z)"
  example_end="$(date -u -d '-18 hours' +%Y-%m-%dT%H:00:00Z)"
fi
if $use_azurite; then
  # Azurite's default ports (10000 blob, 10001 queue, 10002 table): what
  # "UseDevelopmentStorage=true" means to the Azure SDK and the Functions host.
  mkdir -p .azurite
  node_modules/.bin/azurite --silent --location .azurite --skipApiVersionCheck \
    --disableTelemetry --loose &
  children+=($!)
  wait_for_port 10000 "Azurite (blob)" "$!"
  wait_for_port 10001 "Azurite (queue)" "$!"
  export AzureWebJobsStorage="${AzureWebJobsStorage:-UseDevelopmentStorage=true}"
  export CBTRADE_STORAGE_BACKEND=azure
  export CBTRADE_AZURE_CONNECTION_STRING="${CBTRADE_AZURE_CONNECTION_STRING:-UseDevelopmentStorage=true}"
  export CBTRADE_WORK_QUEUE_LOCAL_HOST=true
fi

key="${CBTRADE_API_KEYS%%,*}"
cat <<MSG
cb-trade data service on http://$host:$port  (docs: http://$host:$port/api/docs)
Try:
  curl -s -H "Authorization: Bearer $key" \\
    "http://$host:$port/api/v1/ohlcv?exchange=cryptocom&symbol=BTC/USD&timeframe=5m&start=$example_start&end=$example_end"
MSG
if $use_azurite; then
  cat <<MSG
  curl -s -X POST -H "Authorization: Bearer $key" -H "Content-Type: application/json" \\
    -d '{"series": [{"exchange": "cryptocom", "symbol": "BTC/USD"}], "start": "$example_start", "end": "$example_end"}' \\
    "http://$host:$port/api/v1/backfills"
MSG
fi
.venv/bin/uvicorn --factory cbtrade.api:create_app --host "$host" --port "$port" --no-access-log
