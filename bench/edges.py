"""The edges of a history, timed as deployed: ``python -m bench.edges [runs]``.

Starts Azurite and the exchange simulator, and for each run a fresh container and service
(default settings, Azure backend), then measures over real HTTP:

- the first page of ``start=0`` to ten days after a listing, in pages of 1,000 (target:
  within 10 s, starting at the listing's first candle), its exchange calls, and the whole
  walk's calls against the minimum;
- a cold 100,000-candle page with every exchange call taking 3 s (target: an answer with a
  token within 35 s, the default 20 s budget plus a call), and the pages after it.

Prints one line per measurement and run; quote the spread of the runs, not the best.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from cbtrade.api import create_app
from cbtrade.config import load_settings
from tests.exchange_simulator import ExchangeSimulator
from tests.exchange_simulator.core import LISTED_2024
from tests.fixtures.azurite import run_azurite
from tests.fixtures.exchange_simulator import simulator_url_overrides
from tests.fixtures.http_server import serve_app

KEY = "bench-key"
M5 = 300_000
DAY = 86_400_000


def serve(simulator: ExchangeSimulator, connection_string: str) -> Any:
    settings = load_settings(
        api_keys=KEY,
        continuation_token_secret=uuid.uuid4().hex,
        exchange_url_overrides=simulator_url_overrides(simulator),
        storage_backend="azure",
        azure_connection_string=connection_string,
        azure_container=f"edges{uuid.uuid4().hex[:12]}",
    )
    return serve_app(create_app(settings))


def timed_get(http: httpx.Client, url: str, **params: Any) -> tuple[dict[str, Any], float]:
    began = time.monotonic()
    response = http.get(url, params=params or None)
    response.raise_for_status()
    return response.json(), time.monotonic() - began


def run_once(simulator: ExchangeSimulator, connection_string: str) -> dict[str, float]:
    results: dict[str, float] = {}
    simulator.reset()
    end = LISTED_2024 + 10 * DAY
    with (
        serve(simulator, connection_string) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300) as http,
    ):
        query = {
            "exchange": "cryptocom",
            "symbol": "BTC/USD",
            "start": 0,
            "end": end,
            "limit": 1000,
        }
        body, seconds = timed_get(http, "/api/v1/ohlcv", **query)
        truth = simulator.truth("cryptocom", "BTC/USD", "5m", 0, end)
        assert body["candles"][0]["timestamp"] == truth[0].timestamp
        results["start=0 first page s"] = seconds
        results["start=0 first page calls"] = simulator.candle_requests("cryptocom")
        while body["next_link"]:
            body, _ = timed_get(http, body["next_link"])
        minimum = -(-(end - LISTED_2024) // M5 // 300)
        results["start=0 walk calls over minimum"] = (
            simulator.candle_requests("cryptocom") - minimum
        )

        simulator.set_delay("binance", 3.0)
        start = LISTED_2024 + DAY
        query = {
            "exchange": "binance",
            "symbol": "BTC/USDT",
            "start": start,
            "end": start + 100_000 * M5,
        }
        body, seconds = timed_get(http, "/api/v1/ohlcv", **query, limit=100_000)
        results["3 s calls: first page s"] = seconds
        pages, longest = 1, seconds
        while body.get("next_link"):
            body, seconds = timed_get(http, body["next_link"])
            pages, longest = pages + 1, max(longest, seconds)
        results["3 s calls: longest page s"] = longest
        results["3 s calls: pages"] = pages
    return results


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    simulator = ExchangeSimulator()
    simulator.start()
    with tempfile.TemporaryDirectory() as folder, run_azurite(Path(folder)) as azurite:
        samples: dict[str, list[float]] = {}
        for run in range(runs):
            for name, value in run_once(simulator, azurite.connection_string).items():
                samples.setdefault(name, []).append(value)
                print(f"run {run + 1}: {name} = {value:.2f}", flush=True)
        for name, values in samples.items():
            print(
                f"{name}: median {statistics.median(values):.2f}, "
                f"min {min(values):.2f}, max {max(values):.2f} over {len(values)} runs"
            )
    simulator.stop()


if __name__ == "__main__":
    main()
