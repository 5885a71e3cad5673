"""The timer and the queue-triggered functions of function_app.py as the worker calls them,
on Azurite's blob and queue services, through ccxt against a rate-limited simulator."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import azure.functions.queue as func_queue
import pytest
from azure.functions.timer import TimerRequest

from cbtrade.models import TimeRange
from cbtrade.work.local_host import Handler, QueueHostOptions, run_local_hosts
from tests.exchange_simulator import ExchangeSimulator
from tests.exchange_simulator.core import LISTED_2024, SimulatedMarket
from tests.fixtures.azurite import AzuriteInstance
from tests.fixtures.exchange_simulator import simulator_url_overrides
from tests.integration.functions.conftest import (
    functions_by_name,
    load_function_app,
    unload_function_app,
)

pytestmark = pytest.mark.azurite

REPO = Path(__file__).resolve().parents[3]
M1 = 60_000
SERIES = 500
SIMULATOR_RATE = 50
SERVICE_CALLS = 45
"""The service's pace in calls per second, a little under the exchange's limit (as the README
advises): ccxt counts a Binance spot kline call as 0.4 of its units."""
SERVICE_RATE = SERVICE_CALLS * 0.4


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
def queue_env(
    function_app_env: dict[str, str],
    azurite: AzuriteInstance,
    azurite_container: str,
    simulator: ExchangeSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> list[str]:
    """A function app on Azurite with a work queue and a watchlist of SERIES 1m series."""
    symbols = [f"P{n:03d}/USDT" for n in range(SERIES)]
    simulator.set_markets("binance", [SimulatedMarket(s, LISTED_2024) for s in symbols])
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "CBTRADE_TOPUP_QUEUE": f"topup-{uuid.uuid4().hex[:12]}",
        "CBTRADE_WORK_QUEUE": f"work-{uuid.uuid4().hex[:12]}",
        "CBTRADE_STORAGE_BACKEND": "azure",
        "CBTRADE_AZURE_CONNECTION_STRING": azurite.connection_string,
        "CBTRADE_AZURE_CONTAINER": azurite_container,
        "CBTRADE_EXCHANGE_URL_OVERRIDES": json.dumps(simulator_url_overrides(simulator)),
        "CBTRADE_EXCHANGE_RATE_LIMITS": json.dumps({"binance": SERVICE_RATE}),
        "CBTRADE_WATCHLIST": ",".join(f"binance:{s}:1m" for s in symbols),
        "CBTRADE_TOPUP_MAX_BACKFILL_DAYS": "0.01",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return symbols


async def seed(
    storage: Any, simulator: ExchangeSimulator, symbols: list[str], *, missing: int
) -> TimeRange:
    """Store each 1m series exactly for the 20 minutes before its ``missing`` newest closed
    candles; the range stored."""
    moment = now_ms()
    forming = moment - moment % M1
    seeded = TimeRange(forming - 20 * M1, forming - missing * M1)
    for symbol in symbols:
        truth = simulator.truth("binance", symbol, "1m", *seeded)
        await storage.save_bulk_entries("binance", symbol, "1m", truth, covered=[seeded])
    return seeded


async def drain(module: Any, *, max_in_flight: int) -> None:
    """Run the top-up queue's functions on every message, as the worker would."""
    functions = functions_by_name(module)

    def invoke(name: str) -> Handler:
        function = functions[name].get_user_function()

        async def handle(body: str, dequeue_count: int) -> None:
            await function(func_queue.QueueMessage(body=body.encode(), dequeue_count=dequeue_count))

        return handle

    await run_local_hosts(
        [
            (
                module.services.topup_queue,
                invoke("process_topup_item"),
                invoke("record_poisoned_topup_item"),
            )
        ],
        until_idle=True,
        options=QueueHostOptions(visibility_timeout_seconds=1, max_polling_interval_seconds=0.2),
        max_in_flight=max_in_flight,
    )


async def test_timer_plans_and_the_queue_function_tops_up_every_series_at_the_rate_limit(
    queue_env: list[str], simulator: ExchangeSimulator
) -> None:
    simulator.rate_limit_per_second = SIMULATOR_RATE
    simulator.ban_after_rejections = 50
    module = load_function_app()
    try:
        storage = module.services.storage
        # Every series is stored up to the candle before the newest closed one.
        seeded = await seed(storage, simulator, queue_env, missing=1)

        # The worker: the timer, then the queue function once per message, 16 at a time.
        fired = now_ms()
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.fixtures.function_worker", "--max-in-flight", "16",
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await worker.communicate()
        assert worker.returncode == 0, stderr.decode()[-3000:]
        result = json.loads(stdout.decode().splitlines()[-1])
        assert result["poisoned_items"] == 0

        for symbol in queue_env:
            stored = await storage.get_range("binance", symbol, "1m", seeded.start, fired)
            # Up to the newest candle closed when the timer fired (a quiet minute has none).
            truth = simulator.truth("binance", symbol, "1m", seeded.start, fired, now=fired)
            assert stored[: len(truth)] == truth
            latest = await storage.get_latest_timestamp("binance", symbol, "1m")
            assert latest is not None
            assert latest >= truth[-1].timestamp
        calls = simulator.candle_requests("binance")
        assert calls <= 1.05 * SERIES, calls
        assert simulator.bans == 0
        assert simulator.rejected_requests() <= 0.05 * calls
    finally:
        await unload_function_app(module)


async def test_a_poisoned_top_up_is_logged_and_the_queue_moves_on(
    queue_env: list[str],
    simulator: ExchangeSimulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CBTRADE_WATCHLIST", "binance:P000/USDT:1m")
    monkeypatch.setenv("CBTRADE_EXCHANGE_RETRY_ATTEMPTS", "1")
    simulator.set_outage("binance", 503)
    module = load_function_app()
    try:
        timer = functions_by_name(module)["topup_watchlist"].get_user_function()
        await timer(TimerRequest(past_due=False))
        await drain(module, max_in_flight=4)
        # Every try failed: the item went to the poison queue and its trigger logged it.
        assert await module.services.topup_queue.approximate_count() == 0
        poisoned = [r for r in caplog.records if r.getMessage().startswith("work.poisoned")]
        assert len(poisoned) == 1
        assert "P000/USDT" in poisoned[0].getMessage()
    finally:
        await unload_function_app(module)


async def test_two_workers_share_the_exchange_budget_and_lose_nothing(
    queue_env: list[str], simulator: ExchangeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    series = queue_env[:200]
    monkeypatch.setenv("CBTRADE_WATCHLIST", ",".join(f"binance:{s}:1m" for s in series))
    monkeypatch.setenv("CBTRADE_RATE_BUDGET_SCOPE", "shared")
    simulator.rate_limit_per_second = SIMULATOR_RATE
    simulator.ban_after_rejections = 50
    module = load_function_app()
    try:
        storage = module.services.storage
        seeded = await seed(storage, simulator, series, missing=4)
        timer = functions_by_name(module)["topup_watchlist"].get_user_function()
        fired = now_ms()
        await timer(TimerRequest(past_due=False))

        # Two worker processes drain the one queue; each alone would go at the full rate.
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.fixtures.function_worker",
                "--no-timer",
                cwd=REPO,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(2)
        ]
        for worker in workers:
            stdout, stderr = await worker.communicate()
            assert worker.returncode == 0, stderr.decode()[-3000:]
            assert json.loads(stdout.decode().splitlines()[-1])["poisoned_items"] == 0

        for symbol in series:
            stored = await storage.get_range("binance", symbol, "1m", seeded.start, fired)
            truth = simulator.truth("binance", symbol, "1m", seeded.start, fired, now=fired)
            assert stored[: len(truth)] == truth
        calls = simulator.candle_requests("binance")
        assert simulator.bans == 0
        assert simulator.rejected_requests() <= 0.05 * calls
        # Both worked, and no series was fetched twice beyond a few lost races.
        assert calls <= 1.05 * len(series), calls
    finally:
        await unload_function_app(module)
