"""The benchmark suite: ``scripts/bench.sh`` (see README.md, "Benchmarks").

Starts Azurite and the exchange simulator itself, seeds the store, and prints a markdown
table (also written to docs/benchmarks.md) with the median and min-max of several runs and
ratios against baselines measured in the same run:

- warm read: a stored year of 5m candles through the HTTP API (all pages, default page
  size, JSON decoded by the client, on an open client as ArcticDB reads an open library;
  also as Arrow pages) vs ArcticDB reading the same year from the same Azurite
  vs a raw parallel download of the service's own objects; also a month, a day and a 1m year;
- cold fill: exchange calls against ceil(candles / max per call), and wall time against
  calls / the exchange's rate limit;
- start-up: ``import function_app`` in a fresh process, and whether ccxt was imported;
- memory: peak RSS of the service process after serving the year.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import orjson
from azure.storage.blob.aio import ContainerClient

from cbtrade.config import load_settings
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.manager import create_storage_manager
from cbtrade_client import CandleClient
from tests.exchange_simulator import ExchangeSimulator
from tests.exchange_simulator.core import candle_at
from tests.fixtures.azurite import run_azurite
from tests.fixtures.exchange_simulator import simulator_url_overrides

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
KEY = "bench-key"
YEAR_START = 1_672_531_200_000  # 2023-01-01T00:00:00Z
DAY = 86_400_000
HOUR = 3_600_000
CONTAINER = "bench"


def median_range(samples: list[float]) -> tuple[float, float, float]:
    return statistics.median(samples), min(samples), max(samples)


def timed(runs: int, action: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        action()
        samples.append(time.perf_counter() - began)
    return samples


def series(symbol: str, timeframe_ms: int, start: int, end: int) -> list[Candle]:
    return [candle_at("bench", symbol, t) for t in range(start, end, timeframe_ms)]


async def seed(connection_string: str, symbol: str, timeframe: str, candles: list[Candle]) -> None:
    settings = load_settings(
        storage_backend="azure",
        azure_connection_string=connection_string,
        azure_container=CONTAINER,
    )
    storage = create_storage_manager(settings)
    step = candles[1].timestamp - candles[0].timestamp
    try:
        chunk = 20_000
        for index in range(0, len(candles), chunk):
            part = candles[index : index + chunk]
            covered = TimeRange(part[0].timestamp, part[-1].timestamp + step)
            await storage.save_bulk_entries("binance", symbol, timeframe, part, covered=[covered])
    finally:
        await storage.close()


def service_env(connection_string: str) -> dict[str, str]:
    """The service's settings for the seeded container on Azurite; no exchange is reachable,
    so a stored range must make no exchange call."""
    return {
        "CBTRADE_STORAGE_BACKEND": "azure",
        "CBTRADE_AZURE_CONNECTION_STRING": connection_string,
        "CBTRADE_AZURE_CONTAINER": CONTAINER,
        "CBTRADE_API_KEYS": KEY,
        "CBTRADE_CONTINUATION_TOKEN_SECRET": "bench-token-secret-0123456789",
        "CBTRADE_EXCHANGE_URL_OVERRIDES": json.dumps({"binance": "http://127.0.0.1:9"}),
    }


@contextmanager
def service(
    env: dict[str, str],
    *,
    factory: str = "cbtrade.api:create_app",
    flags: tuple[str, ...] = ("--host", "127.0.0.1", "--log-level", "warning"),
    ready: str = "/api/health",
    headers: dict[str, str] | None = None,
) -> Iterator[tuple[str, int]]:
    """``factory`` under uvicorn with ``flags`` in its own process, as deployed
    (bench/serve_as_deployed.py); yields its URL and pid once ``ready`` answers 2xx."""
    with tempfile.TemporaryFile() as log:
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.serve_as_deployed", "--factory", factory,
             *flags, "--port", str(port)],
            cwd=ROOT, env=os.environ | env, stdout=log, stderr=log,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{factory} exited with {process.returncode}")
                try:
                    httpx.get(f"{url}{ready}", headers=headers, timeout=5).raise_for_status()
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield url, process.pid
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-8000:])
            raise
        finally:
            process.terminate()
            process.wait(timeout=20)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_all(client: CandleClient, symbol: str, timeframe: str, start: int, end: int) -> int:
    """Every candle of the range through the Python client (pages followed, JSON decoded)."""
    candles = client.iter_candles("binance", symbol, start=start, end=end, timeframe=timeframe)
    return sum(1 for _ in candles)


def read_all_arrow(client: CandleClient, symbol: str, timeframe: str, start: int, end: int) -> int:
    """Every candle of the range as one pyarrow Table, through the client's Arrow pages."""
    table = client.get_table("binance", symbol, start=start, end=end, timeframe=timeframe)
    return int(table.num_rows)


def raw_download_samples(connection_string: str, prefix: str) -> list[float]:
    """Timed runs of downloading and decoding (Arrow IPC) every object under ``prefix``, 32
    at once, on one open container client."""
    import pyarrow as pa

    async def download(container: ContainerClient) -> int:
        names = [blob.name async for blob in container.list_blobs(name_starts_with=prefix)]
        limit = asyncio.Semaphore(32)

        async def one(name: str) -> int:
            async with limit:
                data = await (await container.download_blob(name)).readall()
            return int(pa.ipc.open_stream(data).read_all().num_rows)

        return sum(await asyncio.gather(*(one(name) for name in names)))

    container = ContainerClient.from_connection_string(connection_string, CONTAINER)
    with asyncio.Runner() as runner:
        try:
            runner.run(download(container))  # opens the connections
            return timed(RUNS, lambda: runner.run(download(container)))
        finally:
            runner.run(container.close())


async def create_container(connection_string: str, name: str) -> None:
    """ArcticDB expects its container to exist."""
    async with ContainerClient.from_connection_string(connection_string, name) as container:
        await container.create_container()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def startup_samples(runs: int, env: dict[str, str]) -> tuple[list[float], bool]:
    """``import function_app`` in fresh processes with the service's settings ``env`` (the
    Azure backend, as deployed): seconds, and whether ccxt was imported."""
    code = (
        "import sys, time; began = time.perf_counter(); import function_app; "
        "print(time.perf_counter() - began, 'ccxt' in sys.modules)"
    )
    env = os.environ | env
    samples, ccxt_loaded = [], False
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
            check=True,
        ).stdout.split()  # fmt: skip
        samples.append(float(out[0]))
        ccxt_loaded |= out[1] == "True"
    return samples, ccxt_loaded


def fill(http: httpx.Client, url: str, start: int, stop: int) -> None:
    """Every page of Crypto.com's BTC/USD 5m candles in ``[start, stop)`` through the service,
    which fills what it does not hold from the exchange."""
    params: dict[str, str | int] = {
        "exchange": "cryptocom", "symbol": "BTC/USD", "start": start, "end": stop,
    }  # fmt: skip
    while True:
        body = http.get(f"{url}/api/v1/ohlcv", params=params).raise_for_status().json()
        if body["continuation_token"] is None:
            return
        params = {"continuation_token": body["continuation_token"]}


@contextmanager
def running_simulator() -> Iterator[ExchangeSimulator]:
    simulator = ExchangeSimulator()
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


def cold_fill(rows: list[str], connection_string: str) -> None:
    """Fill cold 60-day windows of 5m from the simulated Crypto.com into a container of its
    own on Azurite, as deployed; calls and time vs limits.

    One small request first loads ccxt and the markets (a one-off cost per process, kept out
    of the measurement); then each run fills a distinct, older window.
    """
    import ccxt

    rate = 1000 / ccxt.cryptocom().rateLimit  # what ccxt's limiter allows, requests/s
    with running_simulator() as simulator:
        simulator.rate_limit_per_second = rate
        now = time.time_ns() // 1_000_000
        end = now - now % 300_000 - DAY
        window = 60 * DAY
        env = service_env(connection_string) | {
            "CBTRADE_AZURE_CONTAINER": "bench-cold-fill",
            "CBTRADE_EXCHANGE_URL_OVERRIDES": json.dumps(simulator_url_overrides(simulator)),
        }
        per_call = simulator.max_per_call("cryptocom")
        minimum = -(-(window // 300_000) // per_call)
        calls: list[float] = []
        seconds: list[float] = []
        with (
            service(env) as (url, _),
            httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=240) as http,
        ):
            fill(http, url, end - HOUR, end)  # warm-up: ccxt import and load_markets
            time.sleep(1.0)  # let the simulator's one-second rate window drain
            for run in range(RUNS):
                stop = end - HOUR - run * window
                before = simulator.candle_requests("cryptocom")
                began = time.perf_counter()
                fill(http, url, stop - window, stop)
                seconds.append(time.perf_counter() - began)
                calls.append(simulator.candle_requests("cryptocom") - before)
                time.sleep(1.0)
        call_med, call_lo, call_hi = median_range(calls)
        rows.append(
            f"| cold fill, 60 days of 5m (Crypto.com sim), after a warm-up request | "
            f"exchange calls {call_med:.0f} ({call_lo:.0f}-{call_hi:.0f}) | minimum {minimum} | "
            f"**{call_med / minimum:.2f}x** (target <= 1.05x) |"
        )
        floor = call_med / rate
        sec_med, sec_lo, sec_hi = median_range(seconds)
        rows.append(
            f"| cold fill wall time | {sec_med:.2f} s ({sec_lo:.2f}-{sec_hi:.2f}) "
            f"| calls / rate = {floor:.2f} s "
            f"({rate:.0f}/s) | **{sec_med / floor:.2f}x** (target <= 1.2x) |"
        )


def main() -> None:
    rows = ["| measurement | cb-trade | baseline | ratio |", "|---|---|---|---|"]
    cold_rows: list[str] = []
    year_end = YEAR_START + 365 * DAY
    year_5m = series("BTC/USDT", 300_000, YEAR_START, year_end)
    year_1m = series("ETH/USDT", 60_000, YEAR_START, year_end)
    with ExitStack() as stack:
        scratch = stack.enter_context(tempfile.TemporaryDirectory())
        azurite = stack.enter_context(run_azurite(Path(scratch) / "azurite"))
        print(f"seeding {len(year_5m)} 5m and {len(year_1m)} 1m candles into Azurite", flush=True)
        asyncio.run(seed(azurite.connection_string, "BTC/USDT", "5m", year_5m))
        asyncio.run(seed(azurite.connection_string, "ETH/USDT", "1m", year_1m))
        simulator = stack.enter_context(running_simulator())
        env = service_env(azurite.connection_string) | {
            "CBTRADE_EXCHANGE_URL_OVERRIDES": json.dumps(simulator_url_overrides(simulator))
        }
        with (
            service(env) as (url, pid),
            CandleClient(url, api_key=KEY, timeout=120) as client,
            httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=240) as http,
        ):
            # As deployed: the service has filled a range from an exchange (ccxt and its
            # markets are loaded) before it serves the reads measured below.
            now = time.time_ns() // 1_000_000
            fill(http, url, now - now % DAY - 60 * DAY, now - now % DAY - DAY)
            binance_calls = simulator.candle_requests("binance")
            # Like ArcticDB's reads of an open library, each read uses an open client: what a
            # model service pays per read, not once per process (creating an httpx client
            # costs ~20 ms, most of it loading the CA bundle).

            def year() -> None:
                assert read_all(client, "BTC/USDT", "5m", YEAR_START, year_end) == len(year_5m)

            # The first read after start-up fills the service's decoded-object cache: it is
            # reported on its own row, and the warm runs after it are the service's steady state.
            first_year = timed(1, year)[0]
            http_year = timed(RUNS, year)
            arrow_year = timed(
                RUNS, lambda: read_all_arrow(client, "BTC/USDT", "5m", YEAR_START, year_end)
            )
            raw_year = raw_download_samples(
                azurite.connection_string, "raw_data/binance/BTC-USDT/5m/"
            )
            asyncio.run(create_container(azurite.connection_string, "arctic"))
            candles_file = Path(scratch) / "year.json"
            candles_file.write_bytes(orjson.dumps([list(c) for c in year_5m]))
            arctic = subprocess.run(
                [str(ROOT / ".venv-bench/bin/python"), str(ROOT / "bench/arctic_read.py"),
                 azurite.connection_string, "arctic", str(candles_file), str(RUNS)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if arctic.returncode:
                raise RuntimeError(f"the ArcticDB baseline failed:\n{arctic.stderr[-2000:]}")
            arctic_year = json.loads(arctic.stdout.strip().splitlines()[-1])
            month = timed(
                RUNS, lambda: read_all(client, "BTC/USDT", "5m", YEAR_START, YEAR_START + 31 * DAY)
            )
            day = timed(
                RUNS, lambda: read_all(client, "BTC/USDT", "5m", YEAR_START, YEAR_START + DAY)
            )
            minute_year = timed(
                max(3, RUNS // 2), lambda: read_all(client, "ETH/USDT", "1m", YEAR_START, year_end)
            )
            rss = peak_rss_mb(pid)
            if simulator.candle_requests("binance") != binance_calls:
                raise RuntimeError("a stored range cost an exchange call")
        start_samples, ccxt_loaded = startup_samples(RUNS, env)
        cold_fill(cold_rows, azurite.connection_string)

        h, hmin, hmax = median_range(http_year)
        a, amin, amax = median_range(arctic_year)
        r, rmin, rmax = median_range(raw_year)
        rows.append(
            f"| warm year 5m ({len(year_5m):,} candles), HTTP JSON "
            f"| {h:.3f} s ({hmin:.3f}-{hmax:.3f}) "
            f"| ArcticDB {a:.3f} s ({amin:.3f}-{amax:.3f}) | **{h / a:.1f}x** (target <= 15x) |"
        )
        rows.append(
            f"| first read of the 5m year after the service starts (empty caches), HTTP JSON "
            f"| {first_year:.3f} s (1 run) | warm year 5m {h:.3f} s | {first_year / h:.2f}x |"
        )
        w, wmin, wmax = median_range(arrow_year)
        rows.append(
            f"| warm year 5m, HTTP Arrow | {w:.3f} s ({wmin:.3f}-{wmax:.3f}) "
            f"| ArcticDB {a:.3f} s | **{w / a:.1f}x** (target <= 1.5x) |"
        )
        rows.append(
            f"| warm year 5m, HTTP JSON | {h:.3f} s | raw object download {r:.3f} s "
            f"({rmin:.3f}-{rmax:.3f}) | {h / r:.1f}x |"
        )
        for label, samples in (
            ("warm month 5m", month),
            ("warm day 5m", day),
            ("warm year 1m (525,600 candles)", minute_year),
        ):
            m, lo, hi = median_range(samples)
            rows.append(
                f"| {label}, HTTP JSON | {m:.3f} s ({lo:.3f}-{hi:.3f}) "
                f"| year 5m {h:.3f} s | {m / h:.2f}x |"
            )
        rows.append(
            f"| peak RSS of the service (Azure backend) after a 60-day exchange fill and "
            f"the reads above, the 1m year included | {rss:.0f} MB "
            f"| target 250 MB | {rss / 250:.2f}x |"
        )
    s, smin, smax = median_range(start_samples)
    rows.append(
        f"| `import function_app`, fresh process, Azure backend | {s:.2f} s "
        f"({smin:.2f}-{smax:.2f}) | target 1.5 s | {s / 1.5:.2f}x; ccxt imported: {ccxt_loaded} |"
    )

    header = (
        f"# Benchmarks\n\nMeasured by `scripts/bench.sh` on {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} cores, medians of {RUNS} runs (min-max); ratios are against "
        "baselines measured in the same run. Reads are timed on an open client (ArcticDB's on "
        "an open library); the service runs as deployed, without the dev-only pandas "
        "(`bench/serve_as_deployed.py`).\n\n"
    )
    table = "\n".join(rows + cold_rows) + "\n"
    (ROOT / "docs").mkdir(exist_ok=True)
    document = ROOT / "docs/benchmarks.md"
    # The sections other benchmarks write (## headings after this table) are kept.
    old = document.read_text() if document.exists() else ""
    others = old[old.index("\n## ") :] if "\n## " in old else ""
    document.write_text(header + table + others)
    print(table)


if __name__ == "__main__":
    main()
