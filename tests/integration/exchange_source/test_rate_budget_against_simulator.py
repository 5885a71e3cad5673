"""Two OS processes, each with its own Binance plugin, against one exchange simulator that
answers 429 over 20 requests a second: with the shared rate budget (a document on local disk
or in Azurite) they keep to the limit together; each with its own budget, they do not.

Each process is this module run as a script (``python -m``): it builds the connector from
settings, as the service does, loads the markets, says it is ready, waits for the go, makes
its calls concurrently and prints what came of them as JSON.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any

import pytest

from cbtrade.exchange_source.plugins.ccxt_exchange import CCXTExchangeClient
from tests.exchange_simulator import ExchangeSimulator
from tests.fixtures.azurite import AzuriteInstance
from tests.fixtures.imports import REPO

LISTED = 1_704_067_200_000  # 2024-01-01, the simulator's default listing
H1 = 3_600_000
LIMIT_PER_SECOND = 20
"""The simulator's limit: requests in any sliding second."""
KLINES_COST = 0.4
"""ccxt's cost of one Binance spot klines request (weight 2, at 0.2 units per weight)."""
BUDGET_UNITS = 18 * KLINES_COST
"""The budget, in ccxt's units a second: 18 klines requests a second, a little under 20."""
CALLS = 40
"""Calls per process, all started at once (8 in flight at a time, the plugin's default)."""
SCRIPT = "tests.integration.exchange_source.test_rate_budget_against_simulator"


def run_processes(
    simulator: ExchangeSimulator, tmp_path: Path, settings: dict[str, Any], count: int = 2
) -> list[dict[str, Any]]:
    """Start ``count`` processes with ``settings``, wait until each is ready (markets
    loaded), let them all go at once and return their reports."""
    settings = {
        "exchange_url_overrides": {"binance": simulator.origin},
        "exchange_rate_limits": {"binance": BUDGET_UNITS},
        "exchange_retry_attempts": 8,
        "exchange_retry_max_wait_seconds": 0.5,
        **settings,
    }
    processes: list[tuple[subprocess.Popen[str], IO[str], Path]] = []
    try:
        for number in range(count):
            log = tmp_path / f"process-{number}.log"
            stderr = log.open("w")
            process = subprocess.Popen(
                [sys.executable, "-m", SCRIPT, json.dumps(settings), str(number)],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
            processes.append((process, stderr, log))
        for process, _, log in processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.strip() == "ready", f"{line!r}; {log.read_text()[-3000:]}"
        for process, _, _ in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        reports = []
        for process, _, log in processes:
            out, _ = process.communicate(timeout=120)
            assert process.returncode == 0, log.read_text()[-3000:]
            reports.append(json.loads(out.strip().splitlines()[-1]))
        return reports
    finally:
        for process, stderr, _ in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            stderr.close()


def span(number: int) -> tuple[int, int]:
    """The hours process ``number`` asks for, in CALLS windows of 5 (one call each)."""
    first = LISTED + number * CALLS * 5 * H1
    return first, first + CALLS * 5 * H1


def requests_made(simulator: ExchangeSimulator) -> int:
    return simulator.candle_requests("binance") + simulator.market_requests("binance")


def assert_kept_to_the_limit(simulator: ExchangeSimulator, reports: list[dict[str, Any]]) -> None:
    assert [report["errors"] for report in reports] == [[], []]
    expected = [len(simulator.truth("binance", "BTC/USDT", "1h", *span(n))) for n in range(2)]
    assert [report["candles"] for report in reports] == expected
    assert simulator.bans == 0
    assert simulator.rejected_requests() <= 0.05 * requests_made(simulator), (
        simulator.rejected_requests(),
        requests_made(simulator),
    )
    # Not paced to a crawl either: 80 calls at 18 a second (and the markets) take ~5 s.
    assert all(report["seconds"] < 30 for report in reports)


def limit_the_simulator(simulator: ExchangeSimulator) -> None:
    simulator.rate_limit_per_second = LIMIT_PER_SECOND
    simulator.ban_after_rejections = 10  # as Binance bans an IP that keeps going over


def test_a_shared_budget_on_local_disk_keeps_two_processes_to_the_limit(
    simulator: ExchangeSimulator, tmp_path: Path
) -> None:
    limit_the_simulator(simulator)
    reports = run_processes(
        simulator,
        tmp_path,
        {
            "rate_budget_scope": "shared",
            "storage_backend": "local",
            "local_storage_root": str(tmp_path / "data"),
        },
    )
    assert_kept_to_the_limit(simulator, reports)


@pytest.mark.azurite
def test_a_shared_budget_in_azurite_keeps_two_processes_to_the_limit(
    simulator: ExchangeSimulator, tmp_path: Path, azurite: AzuriteInstance, azurite_container: str
) -> None:
    limit_the_simulator(simulator)
    reports = run_processes(
        simulator,
        tmp_path,
        {
            "rate_budget_scope": "shared",
            "storage_backend": "azure",
            "azure_connection_string": azurite.connection_string,
            "azure_container": azurite_container,
        },
    )
    assert_kept_to_the_limit(simulator, reports)


def test_budgets_per_process_let_two_processes_exceed_the_limit(
    simulator: ExchangeSimulator, tmp_path: Path
) -> None:
    """The check above can fail: each process alone keeps to 18 a second, together 36."""
    simulator.rate_limit_per_second = LIMIT_PER_SECOND
    reports = run_processes(
        simulator,
        tmp_path,
        {
            "rate_budget_scope": "process",
            "storage_backend": "local",
            "local_storage_root": str(tmp_path / "data"),
        },
    )
    assert [report["errors"] for report in reports] == [[], []]  # retried past the 429s
    assert simulator.rejected_requests() > 0.05 * requests_made(simulator)


# In-process: a 429 is retried by the plugin, for every simulated exchange.

PluginFactory = Callable[..., CCXTExchangeClient]
SYMBOL = {"cryptocom": "BTC/USD", "binance": "BTC/USDT", "coinbase": "BTC/USD", "kraken": "BTC/USD"}


@pytest.fixture
async def make_plugin(simulator: ExchangeSimulator) -> AsyncIterator[PluginFactory]:
    plugins: list[CCXTExchangeClient] = []

    def make(exchange_id: str, **options: Any) -> CCXTExchangeClient:
        plugin = CCXTExchangeClient(
            exchange_id,
            url_override=simulator.origin,
            retry_attempts=4,
            retry_max_wait_seconds=0.05,
            **options,
        )
        plugins.append(plugin)
        return plugin

    yield make
    for plugin in plugins:
        await plugin.close()


@pytest.mark.parametrize("exchange_id", sorted(SYMBOL))
async def test_a_429_is_retried_by_the_plugin(
    simulator: ExchangeSimulator, make_plugin: PluginFactory, exchange_id: str
) -> None:
    plugin = make_plugin(exchange_id, enable_rate_limit=False)
    symbol = SYMBOL[exchange_id]
    now = time.time_ns() // 1_000_000
    end = now - now % H1
    await plugin.check_coin_availability(symbol)
    simulator.inject_faults(exchange_id, status=429, count=2)
    candles = await plugin.fetch_historical_data(symbol, "1h", end - 5 * H1, end)
    assert candles == simulator.truth(exchange_id, symbol, "1h", end - 5 * H1, end)
    assert simulator.candle_requests(exchange_id) == 3


# The process


async def _process(settings: dict[str, Any], number: int) -> dict[str, Any]:
    from cbtrade.config import load_settings
    from cbtrade.exchange_source.microkernel import create_data_source_connector
    from cbtrade.storage.manager import create_storage_manager

    config = load_settings(**settings)
    storage = create_storage_manager(config)
    connector = create_data_source_connector(config, storage=storage)
    try:
        client = connector.get_client("binance")
        assert await client.check_coin_availability("BTC/USDT")
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        began = time.monotonic()
        first, _ = span(number)
        windows = [(first + n * 5 * H1, first + (n + 1) * 5 * H1) for n in range(CALLS)]
        results = await asyncio.gather(
            *(client.fetch_historical_data("BTC/USDT", "1h", s, e) for s, e in windows),
            return_exceptions=True,
        )
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        candles = sum(len(r) for r in results if isinstance(r, list))
        return {"errors": errors, "candles": candles, "seconds": time.monotonic() - began}
    finally:
        await connector.close()
        await storage.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_process(json.loads(sys.argv[1]), int(sys.argv[2])))))
