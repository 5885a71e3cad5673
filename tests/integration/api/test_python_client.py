"""The Python client (clients/python, cbtrade_client) against the real service over real
HTTP: uvicorn on a free port (the ``base_url`` fixture of this folder's conftest), the
exchange simulator behind ccxt, the local-disk store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cbtrade_client import (
    AsyncCandleClient,
    AuthenticationError,
    BadRequestError,
    Candle,
    CandleClient,
    NotFoundError,
    SeriesInfo,
    ServiceUnavailableError,
)
from tests.exchange_simulator import ExchangeSimulator
from tests.fixtures.imports import REPO
from tests.fixtures.service import KEY

DAY = 86_400_000
START, END = 1_703_894_400_000, 1_704_326_400_000  # 2023-12-30T00:00Z, 2024-01-04T00:00Z
"""Two days before the simulated listing (2024-01-01) to three days after."""
RANGES: dict[str, tuple[Any, Any]] = {
    "epoch ms": (START, END),
    "ISO Z": ("2023-12-30T00:00:00Z", "2024-01-04T00:00:00Z"),
    "ISO no offset": ("2023-12-30T00:00:00", "2024-01-04T00:00"),
    "ISO offsets": ("2023-12-30T05:30:00+05:30", "2024-01-03T19:00:00-05:00"),
    "ISO date": ("2023-12-30", "2024-01-04"),
    "date": (date(2023, 12, 30), date(2024, 1, 4)),
    "naive datetime": (datetime(2023, 12, 30), datetime(2024, 1, 4)),
    "aware non-UTC datetime": (
        datetime(2023, 12, 30, 9, tzinfo=timezone(timedelta(hours=9))),
        datetime(2024, 1, 3, 16, tzinfo=timezone(timedelta(hours=-8))),
    ),
    "aware UTC datetime": (datetime(2023, 12, 30, tzinfo=UTC), datetime(2024, 1, 4, tzinfo=UTC)),
}


@pytest.fixture
def storage_settings(tmp_path: Path) -> dict[str, Any]:
    """Local disk only: the client does not see the backend (test_http_end_to_end.py has
    both)."""
    return {"local_storage_root": tmp_path / "data"}


def truth(simulator: ExchangeSimulator, exchange: str, symbol: str) -> list[Candle]:
    return [Candle(*c) for c in simulator.truth(exchange, symbol, "5m", START, END)]


def test_every_form_of_time_reads_the_same_exact_range(
    base_url: str, simulator: ExchangeSimulator
) -> None:
    expected = truth(simulator, "cryptocom", "BTC/USD")
    with CandleClient(base_url, api_key=KEY) as client:
        for form, (start, end) in RANGES.items():
            candles = client.get_candles("cryptocom", "BTC/USD", start=start, end=end, limit=300)
            assert candles == expected, form
        assert {"binance", "cryptocom"} <= set(client.list_exchanges())
        assert "BTC/USD" in client.list_coins("cryptocom")
        latest = client.latest_timestamp("cryptocom", "BTC/USD")
    # The service stores whole exchange calls, so it may hold more than was asked for.
    assert latest is not None
    assert latest >= expected[-1].timestamp
    assert expected[0].timestamp >= START
    assert len(expected) > 2 * 300  # three pages at least


async def test_a_contracts_mark_price_is_read_with_price_in_both_clients(
    base_url: str, simulator: ExchangeSimulator
) -> None:
    symbol = "BTC/USDT:USDT"
    mark = [Candle(*c) for c in simulator.truth("binance", symbol, "5m", START, END, price="mark")]
    with CandleClient(base_url, api_key=KEY) as client:
        assert client.get_candles("binance", symbol, start=START, end=END, price="mark") == mark
        latest = client.latest_timestamp("binance", symbol, price="mark")
        assert latest is not None
        assert latest >= mark[-1].timestamp
        assert client.latest_timestamp("binance", symbol) is None  # trades: another series
    async with AsyncCandleClient(base_url, api_key=KEY) as aclient:
        table = await aclient.get_table("binance", symbol, start=START, end=END, price="mark")
        assert table.column("close").to_pylist() == [c.close for c in mark]
        with pytest.raises(BadRequestError, match="spot market"):
            await aclient.get_candles("binance", "BTC/USDT", start=START, price="mark")


async def test_async_client_reads_json_and_arrow_pages_alike(
    base_url: str, simulator: ExchangeSimulator
) -> None:
    expected = truth(simulator, "binance", "BTC/USDT")
    range_ = {"start": "2023-12-30T00:00:00Z", "end": "2024-01-04"}
    async with AsyncCandleClient(base_url, token=lambda: KEY) as client:
        candles = [c async for c in client.iter_candles("binance", "BTC/USDT", **range_, limit=999)]
        table = await client.get_table("binance", "BTC/USDT", **range_, limit=999)
        frame = await client.get_dataframe("binance", "BTC/USDT", **range_)
        assert "binance" in await client.list_exchanges()
    assert candles == expected
    assert [Candle(*row.values()) for row in table.to_pylist()] == expected
    assert list(frame.index.asi8 // 1_000_000) == [c.timestamp for c in expected]
    assert frame["close"].tolist() == [c.close for c in expected]
    with CandleClient(base_url, api_key=KEY) as sync_client:
        assert sync_client.get_table("binance", "BTC/USDT", **range_).equals(table)


async def test_list_series_gives_typed_records_sync_and_async(
    base_url: str, simulator: ExchangeSimulator
) -> None:
    expected = truth(simulator, "cryptocom", "BTC/USD")
    with CandleClient(base_url, api_key=KEY) as client:
        assert client.list_series("cryptocom") == []
        client.get_candles("cryptocom", "BTC/USD", start=START, end=END)
        [info] = client.list_series("cryptocom", "BTC-USD")
        with pytest.raises(NotFoundError):
            client.list_series("nosuchexchange")
    async with AsyncCandleClient(base_url, api_key=KEY) as aclient:
        assert await aclient.list_series("cryptocom") == [info]
    assert isinstance(info, SeriesInfo)
    assert (info.exchange, info.symbol, info.price, info.timeframe) == (
        "cryptocom",
        "BTC/USD",
        "trade",
        "5m",
    )
    # The service stores whole exchange calls, so it may hold more than was asked for.
    assert info.first == expected[0].timestamp
    assert info.last is not None
    assert info.last >= expected[-1].timestamp
    assert info.candles >= len(expected)
    assert info.not_covered == []


def test_the_services_errors_are_typed(base_url: str) -> None:
    with CandleClient(base_url, api_key=KEY) as client:
        with pytest.raises(BadRequestError) as bad:
            client.get_candles("cryptocom", "BTC/USD", start=START, end=END, timeframe="7x")
        with pytest.raises(NotFoundError) as unknown_symbol:
            client.get_candles("cryptocom", "NOPE/USD", start=START, end=END)
        with pytest.raises(NotFoundError):
            client.list_coins("nosuchexchange")
    with CandleClient(base_url, api_key="wrong-key") as client, pytest.raises(AuthenticationError):
        client.list_exchanges()
    with CandleClient(base_url) as client, pytest.raises(AuthenticationError) as no_key:
        client.latest_timestamp("cryptocom", "BTC/USD")
    assert (bad.value.status_code, unknown_symbol.value.status_code) == (400, 404)
    assert bad.value.code == "invalid_timeframe"
    assert "7x" in bad.value.message
    assert no_key.value.status_code == 401


def test_503_is_retried_after_the_wait_and_raised_when_it_lasts(
    base_url: str, simulator: ExchangeSimulator
) -> None:
    """The client's sleep is where the exchange comes back (or does not): nothing waits."""
    sleeps: list[float] = []

    def exchange_back_during_the_wait(seconds: float) -> None:
        sleeps.append(seconds)
        simulator.set_outage("cryptocom", None)

    simulator.set_outage("cryptocom", 503)
    with CandleClient(base_url, api_key=KEY, sleep=exchange_back_during_the_wait) as client:
        candles = client.get_candles("cryptocom", "BTC/USD", start=START, end=END)
    assert candles == truth(simulator, "cryptocom", "BTC/USD")
    assert len(sleeps) == 1

    sleeps.clear()
    simulator.set_outage("binance", 503)
    with (
        CandleClient(base_url, api_key=KEY, retries=2, sleep=sleeps.append) as client,
        pytest.raises(ServiceUnavailableError) as caught,
    ):
        client.get_candles("binance", "BTC/USDT", start=START, end=END)
    assert (caught.value.status_code, caught.value.code) == (503, "exchange_unavailable")
    assert len(sleeps) == 2


IN_A_FRESH_VENV = """
import json, sys
import cbtrade_client
from cbtrade_client import CandleClient

base_url, key, progress = sys.argv[1], sys.argv[2], sys.argv[3] == "progress"
missing = {}
try:
    import cbtrade
except ModuleNotFoundError as exc:
    missing["the service"] = str(exc)
with CandleClient(base_url, api_key=key) as client:
    candles = client.get_candles(
        "cryptocom", "BTC/USD", start="2023-12-30T00:00:00Z", end="2024-01-04T00:00:00Z",
        limit=300, progress=progress,
    )
    if not progress:
        for method in ("get_table", "get_dataframe", "get_candles"):
            try:
                getattr(client, method)("cryptocom", "BTC/USD", start="2024-01-01", progress=True)
            except ModuleNotFoundError as exc:
                missing[method] = str(exc)
print(json.dumps({"module": cbtrade_client.__file__, "candles": candles, "missing": missing}))
"""
NOT_FOR_CLIENTS = ("ccxt", "fastapi", "pyarrow", "pandas", "numpy", "orjson", "tqdm")


def run(command: list[str | Path], cwd: Path, what: str) -> subprocess.CompletedProcess[str]:
    """``command`` run to the end outside the repo, without this process' PYTHONPATH;
    a failure of the test that says ``what`` failed, with the end of its output."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"{what} failed ({result.returncode}):\n{result.stdout[-2000:]}\n"
                    f"{result.stderr[-4000:]}")  # fmt: skip
    return result


@pytest.mark.timeout(600)
def test_a_fresh_venv_installs_the_client_alone_and_reads_an_exact_range(
    base_url: str, simulator: ExchangeSimulator, tmp_path: Path
) -> None:
    """Issue 15's acceptance: a fresh venv outside the repo installs ./clients/python
    without ccxt, FastAPI, the Azure SDK, pyarrow or pandas, and reads an exact range
    through it with ISO strings. pip may fetch httpx and its dependencies from the package
    index: without one, this test fails (it is never skipped)."""
    venv, python = tmp_path / "venv", tmp_path / "venv" / "bin" / "python"
    run([sys.executable, "-m", "venv", venv], tmp_path, "python -m venv")
    pip = [python, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    client_dir = REPO / "clients" / "python"
    install = "pip install ./clients/python (needs the package index for httpx)"
    run([*pip, "install", client_dir], tmp_path, install)
    listed = run([*pip, "list", "--format=json"], tmp_path, "pip list").stdout
    installed = {package["name"].lower() for package in json.loads(listed)}
    assert {"cbtrade-client", "httpx"} <= installed
    assert not {name for name in installed if name.startswith(("azure", *NOT_FOR_CLIENTS))}

    script = tmp_path / "read_a_range.py"
    script.write_text(IN_A_FRESH_VENV)
    plain = json.loads(run([python, script, base_url, KEY, "plain"], tmp_path, "read").stdout)
    assert Path(plain["module"]).is_relative_to(venv)
    assert [Candle(*c) for c in plain["candles"]] == truth(simulator, "cryptocom", "BTC/USD")
    assert plain["missing"] == {
        "the service": "No module named 'cbtrade'",
        "get_table": "get_table needs pyarrow: pip install 'cbtrade-client[arrow]'",
        "get_dataframe": "get_dataframe needs pyarrow: pip install 'cbtrade-client[pandas]'",
        "get_candles": "progress=True needs tqdm: pip install 'cbtrade-client[progress]'",
    }

    run([*pip, "install", f"{client_dir}[progress]"], tmp_path, f"{install}[progress]")
    shown = run([python, script, base_url, KEY, "progress"], tmp_path, "read with progress")
    assert json.loads(shown.stdout)["candles"] == plain["candles"]
    last_line = shown.stderr.strip().splitlines()[-1].split("\r")[-1]
    assert "cryptocom BTC/USD 5m" in last_line
    assert f"{len(plain['candles'])} candles" in last_line
    assert "pages=3" in last_line
