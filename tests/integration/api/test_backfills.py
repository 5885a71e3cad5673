"""Bulk backfill jobs over real HTTP, on Azurite's blob and queue services, through ccxt
against the simulator: a job's progress while it runs, a worker killed mid-job, listings
found for "since listing", failures reported after the queue's retries, and the bounds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from cbtrade.api import create_app
from cbtrade.config import load_settings
from cbtrade.models import Candle
from tests.exchange_simulator import ExchangeSimulator
from tests.exchange_simulator.core import LISTED_2024, LISTED_FEB_2024, SimulatedMarket
from tests.fixtures.azurite import AzuriteInstance
from tests.fixtures.exchange_simulator import simulator_url_overrides
from tests.fixtures.http_server import serve_app

pytestmark = pytest.mark.azurite

KEY = "backfill-test-key"
TOKEN_SECRET = "backfill-test-token-secret"
REPO = Path(__file__).resolve().parents[3]
M5, H1, DAY = 300_000, 3_600_000, 86_400_000
WAIT_SECONDS = 240.0
"""How long a job may take before the test gives up (a hang guard, not a speed check)."""

Serve = Callable[..., AbstractContextManager[httpx.Client]]


@pytest.fixture
def queue_name() -> str:
    return f"work-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def service_env(
    simulator: ExchangeSimulator,
    azurite: AzuriteInstance,
    azurite_container: str,
    queue_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The environment of the service and of its worker processes: one store, one queue."""
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "CBTRADE_TOPUP_QUEUE": f"topup-{queue_name}",
        "CBTRADE_WORK_QUEUE": queue_name,
        "CBTRADE_STORAGE_BACKEND": "azure",
        "CBTRADE_AZURE_CONNECTION_STRING": azurite.connection_string,
        "CBTRADE_AZURE_CONTAINER": azurite_container,
        "CBTRADE_API_KEYS": KEY,
        "CBTRADE_CONTINUATION_TOKEN_SECRET": TOKEN_SECRET,
        "CBTRADE_EXCHANGE_URL_OVERRIDES": json.dumps(simulator_url_overrides(simulator)),
        "CBTRADE_EXCHANGE_RETRY_ATTEMPTS": "2",
        "CBTRADE_EXCHANGE_RETRY_MAX_WAIT_SECONDS": "0.05",
        "CBTRADE_BACKFILL_WINDOW_CALLS": "8",
    }
    # The service reads AzureWebJobsStorage from the environment, as in Azure.
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    return env


@pytest.fixture
def serve(service_env: dict[str, str]) -> Serve:
    """The service with the given settings on top of ``service_env``, and a client."""

    @contextmanager
    def start(**settings: Any) -> Iterator[httpx.Client]:
        base = {
            name.removeprefix("CBTRADE_").lower(): value
            for name, value in service_env.items()
            if name.startswith("CBTRADE_")
        }
        base["exchange_url_overrides"] = json.loads(base["exchange_url_overrides"])
        app = create_app(load_settings(**{**base, **settings}))
        with (
            serve_app(app) as url,
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
            ) as client,
        ):
            yield client

    return start


@contextmanager
def worker(env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m cbtrade.work`` as its own process; killed at the end if still running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cbtrade.work", "--lease-seconds", "4", *args],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()


def wait_for(
    http: httpx.Client, job_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll the job's progress until ``done`` says so; every answer is checked for sense."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        response = http.get(f"/api/v1/backfills/{job_id}")
        assert response.status_code == 200, response.text
        progress = response.json()
        if progress["windows_total"] is not None:
            assert (
                progress["windows_done"] + progress["windows_pending"] + progress["windows_failed"]
                == progress["windows_total"]
            )
        if done(progress):
            return progress
        assert time.monotonic() < deadline, f"the job did not get there: {progress}"
        time.sleep(0.1)


def stored_candles(
    http: httpx.Client,
    exchange: str,
    symbol: str,
    timeframe: str,
    start: int,
    end: int,
    *,
    price: str = "trade",
) -> list[Candle]:
    """The range as the service serves it, every page."""
    candles: list[Candle] = []
    response = http.get(
        "/api/v1/ohlcv",
        params={
            "exchange": exchange,
            "symbol": symbol,
            "timeframe": timeframe,
            "price": price,
            "start": start,
            "end": end,
            "limit": 100_000,
        },
    )
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        candles.extend(Candle(**candle) for candle in body["candles"])
        if body["next_link"] is None:
            return candles
        response = http.get(body["next_link"])


def test_a_backfill_completes_exactly_with_progress_and_survives_a_killed_worker(
    serve: Serve, simulator: ExchangeSimulator, service_env: dict[str, str]
) -> None:
    symbols = [f"C{n:02d}/USD" for n in range(20)]
    simulator.set_markets("cryptocom", [SimulatedMarket(s, LISTED_2024) for s in symbols])
    end = (time.time_ns() // 1_000_000 - 2 * DAY) // DAY * DAY
    start = end - 60 * DAY
    with serve() as http:
        created = http.post(
            "/api/v1/backfills",
            json={
                "series": [{"exchange": "cryptocom", "symbol": s} for s in symbols],
                "start": start,
                "end": end,
            },
        )
        assert created.status_code == 202, created.text
        job = created.json()
        assert created.headers["location"] == f"/api/v1/backfills/{job['id']}"
        calls_per_series = -(-60 * DAY // M5 // simulator.max_per_call("cryptocom"))
        assert job["state"] == "running"
        assert job["windows_total"] == 20 * -(-calls_per_series // 8)
        assert job["windows_done"] == 0
        assert job["windows_pending"] == job["windows_total"]

        # One worker makes progress; it is killed in the middle of its work.
        with worker(service_env, "--max-in-flight", "2") as first:
            midway = wait_for(http, job["id"], lambda p: p["windows_done"] >= 3)
            first.send_signal(signal.SIGKILL)
        assert midway["state"] in ("running", "completed")
        assert midway["candles_stored"] > 0
        # Two more workers finish the job, the killed one's leased windows included.
        with worker(service_env) as second, worker(service_env) as third:
            final = wait_for(http, job["id"], lambda p: p["state"] != "running")
            for process in (second, third):
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert final["state"] == "completed", final
        assert final["windows_done"] == final["windows_total"]
        assert final["windows_failed"] == 0
        assert final["failures"] == []
        assert final["eta_seconds"] == 0.0

        calls = simulator.candle_requests("cryptocom")
        expected = 0
        for symbol in symbols:
            truth = simulator.truth("cryptocom", symbol, "5m", start, end)
            assert stored_candles(http, "cryptocom", symbol, "5m", start, end) == truth
            expected += len(truth)
        assert final["candles_stored"] == expected
        assert simulator.candle_requests("cryptocom") == calls  # re-reads cost no call
        # Each window is whole calls; a window redone after the kill may cost its calls again.
        assert calls <= 20 * calls_per_series + 2 * 8


def test_a_backfill_of_a_perpetuals_mark_price_fills_its_own_series(
    serve: Serve, simulator: ExchangeSimulator
) -> None:
    start, end = LISTED_2024 + 10 * DAY, LISTED_2024 + 70 * DAY
    series = {"exchange": "binance", "symbol": "BTC/USDT:USDT", "timeframe": "1h"}
    with serve(work_queue_local_host=True) as http:
        created = http.post(
            "/api/v1/backfills",
            json={"series": [{**series, "price": "mark"}], "start": start, "end": end},
        )
        assert created.status_code == 202, created.text
        final = wait_for(http, created.json()["id"], lambda p: p["state"] != "running")
        assert final["state"] == "completed", final
        calls = simulator.candle_requests("binance")
        truth = simulator.truth("binance", "BTC/USDT:USDT", "1h", start, end, price="mark")
        mark = stored_candles(http, *series.values(), start, end, price="mark")
        assert mark == truth
        assert final["candles_stored"] == len(truth)
        assert simulator.candle_requests("binance") == calls  # stored: read for free
        assert simulator.truth("binance", "BTC/USDT:USDT", "1h", start, end) != truth


def test_since_listing_finds_each_listing_and_fills_from_it(
    serve: Serve, simulator: ExchangeSimulator
) -> None:
    end = (time.time_ns() // 1_000_000 - DAY) // H1 * H1
    with serve(work_queue_local_host=True) as http:
        created = http.post(
            "/api/v1/backfills",
            json={
                "series": [
                    {"exchange": "cryptocom", "symbol": "BTC/USD", "timeframe": "1h"},
                    {"exchange": "cryptocom", "symbol": "ETH-USD", "timeframe": "1h"},
                ],
                "since_listing": True,
                "end": end,
            },
        )
        assert created.status_code == 202, created.text
        job = created.json()
        assert job["windows_total"] is None  # unknown until the listings are found
        final = wait_for(http, job["id"], lambda p: p["state"] != "running")
        assert final["state"] == "completed", final
        assert final["series_planned"] == 2
        for symbol, listed in (("BTC/USD", LISTED_2024), ("ETH/USD", LISTED_FEB_2024)):
            truth = simulator.truth("cryptocom", symbol, "1h", 0, end)
            assert truth[0].timestamp == listed
            assert stored_candles(http, "cryptocom", symbol, "1h", 0, end) == truth
    # The job outlives the service: another instance reads the same progress.
    with serve() as http:
        again = http.get(f"/api/v1/backfills/{job['id']}")
        assert again.status_code == 200
        assert again.json() == {**final, "eta_seconds": again.json()["eta_seconds"]}


def test_a_window_whose_retries_are_spent_is_reported_not_dropped(
    serve: Serve, simulator: ExchangeSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host_json = tmp_path / "host.json"
    host_json.write_text(
        json.dumps(
            {
                "extensions": {
                    "queues": {
                        "maxDequeueCount": 2,
                        "visibilityTimeout": "00:00:00",
                        "maxPollingInterval": "00:00:00.2",
                    }
                }
            }
        )
    )
    monkeypatch.setattr("cbtrade.work.local_host.HOST_JSON", host_json)
    end = (time.time_ns() // 1_000_000 - 2 * DAY) // DAY * DAY
    with serve(work_queue_local_host=True) as http:
        # Markets are loaded (and kept) before the exchange goes down for good.
        # (a range after the job's, whose fill stretches towards now, not into the job's)
        recent = time.time_ns() // 1_000_000 - 3 * H1
        warm = http.get(
            "/api/v1/ohlcv",
            params={"exchange": "binance", "symbol": "BTC/USDT", "start": recent},
        )
        assert warm.status_code == 200
        simulator.set_outage("binance", 503)
        created = http.post(
            "/api/v1/backfills",
            json={
                "series": [{"exchange": "binance", "symbol": "BTC/USDT"}],
                "start": end - DAY,
                "end": end,
            },
        )
        assert created.status_code == 202, created.text
        final = wait_for(http, created.json()["id"], lambda p: p["state"] != "running")
    assert final["state"] == "completed_with_failures", final
    assert final["windows_failed"] == final["windows_total"] == 1
    failure = final["failures"][0]
    assert failure["series"] == {
        "exchange": "binance", "symbol": "BTC/USDT", "price": "trade", "timeframe": "5m"
    }  # fmt: skip
    assert "poison" in failure["error"]


def test_backfill_requests_are_checked(serve: Serve, simulator: ExchangeSimulator) -> None:
    series = [{"exchange": "cryptocom", "symbol": "BTC/USD"}]
    with serve(backfill_max_series=3, backfill_max_calls=1_000) as http:
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"series": series}, 400, "since_listing"),
            (
                {"series": series, "start": 1_704_067_200_000, "since_listing": True},
                400,
                "since_listing",
            ),
            ({"series": series * 1, "start": "2024-01-01", "end": "2023-01-01"}, 400, "before"),
            (
                {
                    "series": [{"exchange": "cryptocom", "symbol": f"S{n}/USD"} for n in range(4)],
                    "start": 1_704_067_200_000,
                },
                400,
                "CBTRADE_BACKFILL_MAX_SERIES",
            ),
            ({"series": series, "start": "2020-01-01"}, 400, "CBTRADE_BACKFILL_MAX_CALLS"),
            ({"series": series, "start": 1_704_067_200}, 400, "epoch seconds"),
            (
                {
                    "series": [{"exchange": "cryptocom", "symbol": "NOPE/USD"}],
                    "start": 1_704_067_200_000,
                },
                404,
                "NOPE/USD",
            ),
            (
                {
                    "series": [{"exchange": "nosuch", "symbol": "BTC/USD"}],
                    "start": 1_704_067_200_000,
                },
                404,
                "nosuch",
            ),
            (
                {
                    "series": [{"exchange": "cryptocom", "symbol": "BTC/USD", "timeframe": "7m"}],
                    "start": 1_704_067_200_000,
                },
                400,
                "7m",
            ),
            ({"series": [], "start": 1_704_067_200_000}, 400, "series"),
            (
                {
                    "series": [{"exchange": "cryptocom", "symbol": "BTC/USD", "timeframe": "3m"}],
                    "start": 1_704_067_200_000,
                },
                400,
                "does not offer '3m'",
            ),
            (
                {"series": [{"exchange": "kraken", "symbol": "BTC/USD"}], "start": "2024-01-01"},
                422,
                "newest 720",
            ),
            ({"series": series, "start": 1_704_067_200_000, "extra": 1}, 400, "extra"),
        ]
        for body, status, named in cases:
            response = http.post("/api/v1/backfills", json=body)
            assert response.status_code == status, (body, response.text)
            assert named in response.json()["error"]["message"], (body, response.text)
            if status == 404 and "NOPE" in named:
                assert response.json()["error"]["code"] == "unknown_symbol"
        assert http.get("/api/v1/backfills/0123456789abcdef").status_code == 404
        assert http.get("/api/v1/backfills/not-a-job").status_code == 400
        anonymous = httpx.post(f"{http.base_url}/api/v1/backfills", json={"series": series})
        assert anonymous.status_code == 401


def test_without_a_work_queue_a_backfill_is_refused_clearly(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AzureWebJobsStorage")
    with serve() as http:
        response = http.post(
            "/api/v1/backfills",
            json={
                "series": [{"exchange": "cryptocom", "symbol": "BTC/USD"}],
                "start": 1_704_067_200_000,
            },
        )
    assert response.status_code == 503
    assert "AzureWebJobsStorage" in response.json()["error"]["message"]
