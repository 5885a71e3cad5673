"""The watchlist top-up through the work queue, timed: ``python -m bench.topup [runs]``.

Starts Azurite and the exchange simulator (simulated Binance limited to 50 calls/s, every
request answered after 50 ms, banning after 50 rejections within a minute), and for each run
and N in (100, 500, 1000) 1m series (P000/USDT..., listed 2024):

1. seeds every series in a fresh container up to the candle before the newest closed one, so
   each needs exactly one new candle (one exchange call);
2. runs ``python -m tests.fixtures.function_worker --max-in-flight 16`` in a process of its own
   with the settings of tests/integration/functions/test_work_queue.py (work queue on
   Azurite, service paced at 45 calls/s = 18 of ccxt's units, a Binance kline costing 0.4):
   the timer plans the work items, then the queue function runs once per message until the
   queue is empty;
3. checks that every series reached the newest closed candle the simulator had when the
   worker was started.

And, for N = 100 only, the old way in the same run: the timer with no work queue
(``AzureWebJobsStorage`` unset), which tops every series up in its own process
(``TopUpRunner.run``), driven through function_app's timer function in a subprocess.

The rate floor is series / 50 calls/s (the exchange's limit, as issue 13 defines it); the
service's own pace (45/s) is shown beside it. Also the worker process's CPU seconds (start-up
included) and the load average before it started: the machine is shared. Prints one line per
measurement and run, then the median and min-max over the runs; quote the spread, not the
best run.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from cbtrade.config import load_settings
from cbtrade.models import TimeRange
from cbtrade.storage.manager import StorageManagerImpl, create_storage_manager
from tests.exchange_simulator import ExchangeSimulator
from tests.exchange_simulator.core import LISTED_2024, SimulatedMarket
from tests.fixtures.azurite import run_azurite
from tests.fixtures.exchange_simulator import simulator_url_overrides

REPO = Path(__file__).resolve().parents[1]
M1 = 60_000
SIZES = (100, 500, 1000)
BASELINE_SIZE = 100
SIMULATOR_RATE = 50
"""The simulated exchange's limit in calls per second."""
SERVICE_CALLS = 45
"""The service's pace in calls per second, a little under the exchange's limit."""
SERVICE_RATE = SERVICE_CALLS * 0.4
"""The same in ccxt's units (a Binance spot kline call costs 0.4)."""
DELAY_SECONDS = 0.05
BAN_AFTER_REJECTIONS = 50
MAX_IN_FLIGHT = 16
STORAGE_CONCURRENCY = 32
WORKER_TIMEOUT_SECONDS = 900.0

OLD_WAY = """
import asyncio, json, time
import function_app
from azure.functions.timer import TimerRequest

async def main():
    timer = {
        fn.get_function_name(): fn.get_user_function() for fn in function_app.app.get_functions()
    }["topup_watchlist"]
    assert function_app.services.work_queue is None
    try:
        began = time.monotonic()
        await timer(TimerRequest(past_due=False))
        wall = time.monotonic() - began
    finally:
        await function_app.services.aclose()
    print(json.dumps({"wall_seconds": round(wall, 3)}), flush=True)

asyncio.run(main())
"""
"""The timer with no work queue: ``services.topup.tick(None)`` tops up in-process."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def symbols_for(series: int) -> list[str]:
    return [f"P{n:03d}/USDT" for n in range(series)]


async def for_each(symbols: list[str], action: Any) -> list[Any]:
    """``action(symbol)`` for every symbol, STORAGE_CONCURRENCY at a time, in order."""
    gate = asyncio.Semaphore(STORAGE_CONCURRENCY)

    async def bounded(symbol: str) -> Any:
        async with gate:
            return await action(symbol)

    return await asyncio.gather(*(bounded(symbol) for symbol in symbols))


def worker_env(
    simulator: ExchangeSimulator, connection_string: str, container: str, symbols: list[str]
) -> dict[str, str]:
    """The environment of test_work_queue.py's worker (settings from nowhere else)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CBTRADE_", "AzureWebJobsStorage"))
    }
    env.update(
        {
            "AzureWebJobsStorage": connection_string,
            "CBTRADE_TOPUP_QUEUE": f"topup-{uuid.uuid4().hex[:12]}",
            "CBTRADE_WORK_QUEUE": f"work-{uuid.uuid4().hex[:12]}",
            "CBTRADE_STORAGE_BACKEND": "azure",
            "CBTRADE_AZURE_CONNECTION_STRING": connection_string,
            "CBTRADE_AZURE_CONTAINER": container,
            "CBTRADE_EXCHANGE_URL_OVERRIDES": json.dumps(simulator_url_overrides(simulator)),
            "CBTRADE_EXCHANGE_RATE_LIMITS": json.dumps({"binance": SERVICE_RATE}),
            "CBTRADE_WATCHLIST": ",".join(f"binance:{s}:1m" for s in symbols),
            "CBTRADE_TOPUP_MAX_BACKFILL_DAYS": "0.01",
            "CBTRADE_API_KEYS": "bench-key",
            "CBTRADE_CONTINUATION_TOKEN_SECRET": uuid.uuid4().hex,
        }
    )
    return env


async def seed(
    simulator: ExchangeSimulator, storage: StorageManagerImpl, symbols: list[str]
) -> TimeRange:
    """Store every series up to the candle before the newest closed one."""
    moment = now_ms()
    forming = moment - moment % M1
    seeded = TimeRange(forming - 20 * M1, forming - M1)

    async def one(symbol: str) -> None:
        truth = simulator.truth("binance", symbol, "1m", *seeded)
        await storage.save_bulk_entries("binance", symbol, "1m", truth, covered=[seeded])

    await for_each(symbols, one)
    return seeded


async def run_worker(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), WORKER_TIMEOUT_SECONDS)
    if process.returncode != 0:
        raise RuntimeError(f"worker exited {process.returncode}: {stderr.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(stdout.decode().splitlines()[-1])
    return result


async def measure(
    simulator: ExchangeSimulator, connection_string: str, series: int, *, queue: bool
) -> dict[str, float]:
    """One top-up of ``series`` series, through the queue or the old way; its numbers."""
    symbols = symbols_for(series)
    simulator.reset()
    simulator.set_markets("binance", [SimulatedMarket(s, LISTED_2024) for s in symbols])
    simulator.rate_limit_per_second = SIMULATOR_RATE
    simulator.ban_after_rejections = BAN_AFTER_REJECTIONS
    simulator.set_delay("binance", DELAY_SECONDS)
    container = f"topup{uuid.uuid4().hex[:12]}"
    storage = create_storage_manager(
        load_settings(
            storage_backend="azure",
            azure_connection_string=connection_string,
            azure_container=container,
        )
    )
    try:
        seeded = await seed(simulator, storage, symbols)
        env = worker_env(simulator, connection_string, container, symbols)
        if queue:
            command = [sys.executable, "-m", "tests.fixtures.function_worker"]
            command += ["--max-in-flight", str(MAX_IN_FLIGHT)]
        else:
            del env["AzureWebJobsStorage"]
            command = [sys.executable, "-c", OLD_WAY]
        load = os.getloadavg()[0]
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        fired = now_ms()
        result = await run_worker(command, env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime

        # The newest closed candle each series has on the exchange when the worker started
        # (a quiet minute has none, so it is the simulator's, not the clock's, minute).
        async def failed(symbol: str) -> bool:
            truth = simulator.truth("binance", symbol, "1m", seeded.start, fired, now=fired)
            latest = await storage.get_latest_timestamp("binance", symbol, "1m")
            return latest is None or latest < truth[-1].timestamp

        failures = sum(await for_each(symbols, failed))
    finally:
        await storage.close()
    wall = float(result["wall_seconds"])
    calls = simulator.candle_requests("binance")
    floor = series / SIMULATOR_RATE
    numbers = {
        "wall s": wall,
        "floor s (N/50)": floor,
        "wall / floor": wall / floor,
        "wall / (N/45)": wall / (series / SERVICE_CALLS),
        "wall / (calls/45)": wall / (calls / SERVICE_CALLS),
        "wall - calls/45 s": wall - calls / SERVICE_CALLS,
        "series/s": series / wall,
        "calls/series": calls / series,
        "market calls": float(simulator.market_requests("binance")),
        "429s": float(simulator.rejected_requests()),
        "bans": float(simulator.bans),
        "not topped up": float(failures),
        "worker process CPU s (with start-up)": cpu,
        "load average (1 min) before": load,
    }
    if queue:
        numbers["timer s"] = float(result["timer_seconds"])
        numbers["drain s"] = float(result["drain_seconds"])
        numbers["poison messages"] = float(result["poisoned_items"])
    return numbers


async def run_once(simulator: ExchangeSimulator, connection_string: str) -> dict[str, float]:
    results: dict[str, float] = {}
    for series in SIZES:
        queued = await measure(simulator, connection_string, series, queue=True)
        for name, value in queued.items():
            results[f"queue N={series}: {name}"] = value
    old = await measure(simulator, connection_string, BASELINE_SIZE, queue=False)
    for name, value in old.items():
        results[f"in-process N={BASELINE_SIZE}: {name}"] = value
    via_queue = results[f"queue N={BASELINE_SIZE}: wall s"]
    results[f"speed-up N={BASELINE_SIZE}: in-process wall / queue wall"] = old["wall s"] / via_queue
    return results


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    simulator = ExchangeSimulator()
    simulator.start()
    try:
        with tempfile.TemporaryDirectory() as folder, run_azurite(Path(folder)) as azurite:
            samples: dict[str, list[float]] = {}
            for run in range(runs):
                results = asyncio.run(run_once(simulator, azurite.connection_string))
                for name, value in results.items():
                    samples.setdefault(name, []).append(value)
                    print(f"run {run + 1}: {name} = {value:.3f}", flush=True)
            for name, values in samples.items():
                print(
                    f"{name}: median {statistics.median(values):.3f}, "
                    f"min {min(values):.3f}, max {max(values):.3f} over {len(values)} runs",
                    flush=True,
                )
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
