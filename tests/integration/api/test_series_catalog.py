"""GET /api/v1/series over real HTTP on both storage backends, after real fills through ccxt
from the exchange simulator: every series read, its first and last candle as the exchange
has them, its counts and the ranges never fetched; a second request decodes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx
import pytest

from cbtrade.api import create_app
from cbtrade.models import TimeRange
from cbtrade.price_types import PriceType, series_symbol
from cbtrade.storage import object_storage
from cbtrade.storage.implementations.azure_blob_storage import AzureBlobStorage
from cbtrade.storage.manager import create_raw_data_storage
from cbtrade.storage.object_storage import ObjectRawDataStorage
from cbtrade.storage.path_utility import OBJECT_SUFFIX, StoragePathUtility
from cbtrade.time_ranges import clip_ranges, merge_ranges, subtract_ranges
from tests.exchange_simulator import ExchangeSimulator
from tests.exchange_simulator.core import LISTED_2024, LISTED_FEB_2024
from tests.fixtures.http_server import serve_app
from tests.fixtures.service import KEY, service_settings
from tests.fixtures.stored_objects import read_stored_object

DAY = 86_400_000
TIMEFRAME_MS = {"5m": 300_000, "1h": 3_600_000}
SIMULATOR_PRICE = {"trade": "trade", "mark": "mark", "index": "index"}


class Series(NamedTuple):
    exchange: str
    symbol: str
    timeframe: str
    price: PriceType = "trade"


BTC_5M = Series("cryptocom", "BTC/USD", "5m")
BTC_1H = Series("cryptocom", "BTC/USD", "1h")
ETH_5M = Series("cryptocom", "ETH/USD", "5m")
# (series, [start, end) read): BTC/USD 5m from before its listing, and again two days later,
# leaving a hole never fetched; BTC/USD 1h; ETH/USD 5m.
READS = [
    (BTC_5M, LISTED_2024 - 2 * DAY, LISTED_2024 + 2 * DAY),
    (BTC_5M, LISTED_2024 + 4 * DAY, LISTED_2024 + 5 * DAY),
    (BTC_1H, LISTED_2024, LISTED_2024 + 20 * DAY),
    (ETH_5M, LISTED_FEB_2024, LISTED_FEB_2024 + DAY),
]


@pytest.fixture
def app(simulator: ExchangeSimulator, storage_settings: dict[str, Any]) -> Any:
    return create_app(service_settings(simulator, **storage_settings))


@pytest.fixture
def http(app: Any) -> Iterator[httpx.Client]:
    with (
        serve_app(app) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as c,
    ):
        yield c


def read_all(http: httpx.Client, series: Series, start: int, end: int) -> None:
    params: dict[str, Any] = {**series._asdict(), "start": start, "end": end, "format": "csv"}
    while params:
        response = http.get("/api/v1/ohlcv", params=params)
        assert response.status_code == 200, response.text
        token = response.headers.get("x-continuation-token")
        params = {"continuation_token": token, "format": "csv"} if token else {}


def stored_coverage(
    simulator: ExchangeSimulator, storage_settings: dict[str, Any], series: Series
) -> list[TimeRange]:
    """The ranges a series' stored objects record as fetched, read with plain pyarrow by a
    storage instance of the test's own (the fills choose how far past a read they fetch)."""

    async def read() -> list[TimeRange]:
        storage = create_raw_data_storage(service_settings(simulator, **storage_settings))
        assert isinstance(storage, ObjectRawDataStorage)
        stored = series_symbol(series.symbol, series.price)
        prefix = StoragePathUtility().get_series_prefix(series.exchange, stored, series.timeframe)
        try:
            covered: list[TimeRange] = []
            for key in await storage._list_keys(prefix):
                found = await storage._read_object(key)
                assert found is not None
                covered += [TimeRange(*r) for r in read_stored_object(found[0])["covered"]]
            return merge_ranges(covered)
        finally:
            await storage.close()

    return asyncio.run(read())


def expected_entry(
    simulator: ExchangeSimulator, storage_settings: dict[str, Any], series: Series
) -> dict[str, Any]:
    """The catalog entry the exchange's truth implies for the ranges the series' objects
    record as fetched."""
    covered = stored_coverage(simulator, storage_settings, series)
    step = TIMEFRAME_MS[series.timeframe]
    price = SIMULATOR_PRICE[series.price]
    candles = [
        candle
        for r in covered
        for candle in simulator.truth(
            series.exchange, series.symbol, series.timeframe, r.start, r.end, price=price
        )
    ]
    first, last = candles[0].timestamp, candles[-1].timestamp
    life = TimeRange(first, last + step)
    # Covered slots from the first candle to the last without a candle are quiet (no trades).
    slots = sum((r.end - r.start) // step for r in clip_ranges(covered, life))
    return {
        **series._asdict(),
        "first": first,
        "last": last,
        "candles": len(candles),
        "not_covered": [list(gap) for gap in subtract_ranges(life, covered)],
        "missing_candles": slots - len(candles),
    }


def test_the_catalog_lists_what_was_read_with_its_holes_and_a_second_call_decodes_nothing(
    app: Any,
    http: httpx.Client,
    simulator: ExchangeSimulator,
    storage_settings: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for series, start, end in READS:
        read_all(http, series, start, end)
    response = http.get("/api/v1/series", params={"exchange": "cryptocom"})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["exchange"] == "cryptocom"
    entries = body["series"]
    expected = [
        expected_entry(simulator, storage_settings, series) for series in (BTC_5M, BTC_1H, ETH_5M)
    ]
    times = [(e.pop("first_time"), e.pop("last_time")) for e in entries]
    assert entries == expected
    btc = expected[0]
    assert btc["first"] == LISTED_2024  # not the start read: the listing
    assert btc["last"] >= LISTED_2024 + 5 * DAY - TIMEFRAME_MS["5m"]
    # Fills may fetch a little past a read's end, never into the next read's range.
    [[hole_start, hole_end]] = btc["not_covered"]
    assert LISTED_2024 + 2 * DAY <= hole_start < hole_end == LISTED_2024 + 4 * DAY
    assert btc["missing_candles"] > 0  # the simulator's quiet intervals
    assert times[0][0] == "2024-01-01T00:00:00Z"

    backend = app.state.services.storage.backend
    data_reads: list[str] = []
    decoded: list[str] = []

    def recorded(primitive: Any) -> Any:
        async def call(key: str, *args: Any) -> Any:
            if key.endswith(OBJECT_SUFFIX):
                data_reads.append(key)
            return await primitive(key, *args)

        return call

    for name in ("_read_object", "_read_object_if_changed"):
        monkeypatch.setattr(backend, name, recorded(getattr(backend, name)))
    summarize = object_storage.summarize_object
    monkeypatch.setattr(
        object_storage,
        "summarize_object",
        lambda etag, *args: decoded.append(etag) or summarize(etag, *args),
    )
    again = http.get("/api/v1/series", params={"exchange": "cryptocom", "symbol": "BTC-USD"})
    assert again.status_code == 200, again.text
    assert [
        {k: v for k, v in e.items() if not k.endswith("_time")} for e in again.json()["series"]
    ] == expected[:2]
    assert decoded == []
    if isinstance(backend, AzureBlobStorage):
        assert data_reads == []
    requests = simulator.candle_requests("cryptocom")
    http.get("/api/v1/series", params={"exchange": "cryptocom"})
    assert simulator.candle_requests("cryptocom") == requests  # the catalog asks no exchange


def test_an_exchange_with_nothing_stored_has_an_empty_catalog(http: httpx.Client) -> None:
    response = http.get("/api/v1/series", params={"exchange": "binance", "symbol": "BTC/USDT"})
    assert response.status_code == 200, response.text
    assert response.json() == {"exchange": "binance", "series": []}


def test_each_price_type_of_a_perpetual_is_listed_under_its_symbol(
    http: httpx.Client, simulator: ExchangeSimulator, storage_settings: dict[str, Any]
) -> None:
    start = LISTED_2024 + 10 * DAY
    perpetual = [Series("binance", "BTC/USDT:USDT", "5m", price) for price in ("trade", "mark")]
    for series in perpetual:
        read_all(http, series, start, start + DAY)
    read_all(http, Series("binance", "BTC/USDT", "5m"), start, start + DAY)  # spot: not listed
    response = http.get("/api/v1/series", params={"exchange": "binance", "symbol": "BTC/USDT:USDT"})
    assert response.status_code == 200, response.text
    entries = response.json()["series"]
    for entry in entries:
        del entry["first_time"], entry["last_time"]
    assert entries == [expected_entry(simulator, storage_settings, s) for s in perpetual]
    assert [e["price"] for e in entries] == ["trade", "mark"]
