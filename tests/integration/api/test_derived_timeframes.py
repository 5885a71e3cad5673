"""Derived timeframes over real HTTP (uvicorn), on both storage backends (local disk and
Azurite), through real ccxt against the exchange simulator: Coinbase offers 1m, 5m, 15m,
30m, 1h, 2h, 6h and 1d, so 8h is derived from 2h, 1w and 1M from 1d."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pyarrow as pa
import pytest

from cbtrade.models import Candle
from tests.exchange_simulator import ExchangeSimulator
from tests.fixtures.aggregation import (
    aggregated,
    assert_same_candles,
    calendar_month,
    monday_week,
)
from tests.fixtures.ohlcv_pages import follow_pages

DAY = 86_400_000
HOUR = 3_600_000
MONDAY = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday; the simulated listing
START, END = MONDAY + 2 * DAY, MONDAY + 9 * 7 * DAY  # nine weeks, the first one partly


@pytest.mark.parametrize("style", ["latest", "earliest"])
@pytest.mark.parametrize(
    ("timeframe", "base", "bucket_of", "limit"),
    [
        ("8h", "2h", lambda t: t - t % (8 * HOUR), 50),
        ("1w", "1d", monday_week, 3),
    ],
)
def test_a_derived_timeframe_is_the_aggregation_of_its_base_and_a_reread_is_free(
    http: httpx.Client,
    simulator: ExchangeSimulator,
    style: str,
    timeframe: str,
    base: str,
    bucket_of: Callable[[int], int],
    limit: int,
) -> None:
    simulator.set_window_style("coinbase", style)  # type: ignore[arg-type]
    query = {"exchange": "coinbase", "symbol": "BTC-USD", "timeframe": timeframe, "limit": limit}
    candles, pages = follow_pages(http, **query, start=START, end=END)
    truth = simulator.truth("coinbase", "BTC/USD", base, bucket_of(START), END)
    assert_same_candles(candles, aggregated(truth, bucket_of, lambda bucket: bucket >= START))
    assert len(pages) > 2
    assert all(page["derived_from"] == page["header"] == base for page in pages)
    assert all(page["timeframe"] == timeframe for page in pages)
    calls = simulator.candle_requests("coinbase")
    assert calls > 0
    again, _ = follow_pages(http, **query, start=START, end=END)
    assert again == candles
    assert simulator.candle_requests("coinbase") == calls
    # The catalog lists what is stored: the base series, from the first bucket served on.
    listed = http.get("/api/v1/series", params={"exchange": "coinbase", "symbol": "BTC/USD"})
    [entry] = listed.json()["series"]
    assert (entry["timeframe"], entry["not_covered"]) == (base, [])
    assert entry["first"] == next(c.timestamp for c in truth if c.timestamp >= candles[0][0])


def test_months_are_derived_from_days_in_every_format(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    start, end = "2024-01-01T00:00:00Z", "2024-04-01T00:00:00Z"
    query = {"exchange": "coinbase", "symbol": "BTC/USD", "timeframe": "1M"}
    candles, pages = follow_pages(http, **query, start=start, end=end, limit=2)
    truth = simulator.truth("coinbase", "BTC/USD", "1d", MONDAY, MONDAY + 91 * DAY)
    assert_same_candles(candles, aggregated(truth, calendar_month, lambda month: True))
    assert [c.timestamp for c in candles] == [MONDAY, MONDAY + 31 * DAY, MONDAY + 60 * DAY]
    assert [page["derived_from"] for page in pages] == ["1d", "1d"]

    csv = http.get("/api/v1/ohlcv", params={**query, "start": start, "end": end, "format": "csv"})
    assert csv.headers["x-derived-from"] == "1d"
    assert len(csv.text.strip().splitlines()) == 1 + 3
    arrow = http.get(
        "/api/v1/ohlcv", params={**query, "start": start, "end": end, "format": "arrow"}
    )
    assert arrow.headers["x-derived-from"] == "1d"
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert table.column("timestamp").to_pylist() == [c.timestamp for c in candles]

    # Derived pages are not sealed; their ETag still spares the body, and the 304 says the base.
    first = http.get("/api/v1/ohlcv", params={**query, "start": start, "end": end})
    assert first.headers["cache-control"] == "private, no-cache"
    unchanged = http.get(
        "/api/v1/ohlcv",
        params={**query, "start": start, "end": end},
        headers={"If-None-Match": first.headers["etag"]},
    )
    assert unchanged.status_code == 304
    assert unchanged.headers["x-derived-from"] == "1d"


@pytest.mark.parametrize(
    ("exchange", "symbol", "timeframe"),
    [("coinbase", "BTC/USD", "6h"), ("binance", "BTC/USDT", "8h")],
)
def test_an_offered_timeframe_is_fetched_natively(
    http: httpx.Client, simulator: ExchangeSimulator, exchange: str, symbol: str, timeframe: str
) -> None:
    candles, pages = follow_pages(
        http, exchange=exchange, symbol=symbol, timeframe=timeframe, start=START, end=END
    )
    assert candles == simulator.truth(exchange, symbol, timeframe, START, END)
    assert all("derived_from" not in page and page["header"] is None for page in pages)


def test_the_base_series_pages_and_a_derived_one_do_not_share_cached_pages(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    # The 1d pages of a past range are sealed and kept; the 3d page over it is computed.
    params = {"exchange": "coinbase", "symbol": "BTC/USD", "start": START, "end": END}
    days = [http.get("/api/v1/ohlcv", params={**params, "timeframe": "1d"}) for _ in range(2)]
    assert days[0].content == days[1].content
    derived = http.get("/api/v1/ohlcv", params={**params, "timeframe": "3d"})
    assert derived.json()["derived_from"] == "1d"
    # A bucket opening before END is served whole, as a native candle is.
    truth = simulator.truth("coinbase", "BTC/USD", "1d", START - 3 * DAY, END + 3 * DAY)
    expected = aggregated(truth, lambda t: t - t % (3 * DAY), lambda b: START <= b < END)
    assert (END - START) % (3 * DAY) != 0  # so the last bucket reaches past END
    assert_same_candles([Candle(**c) for c in derived.json()["candles"]], expected)


@pytest.mark.parametrize(
    ("exchange", "timeframe", "says"),
    [
        ("binance", "1s", "binance offers '1s' candles natively"),
        ("coinbase", "1y", "unsupported timeframe '1y'"),
        ("coinbase", "0h", "unsupported timeframe '0h'"),
        ("coinbase", "90s", "unsupported timeframe '90s'"),
    ],
)
def test_a_timeframe_that_is_neither_served_nor_derivable_is_a_400(
    http: httpx.Client, exchange: str, timeframe: str, says: str
) -> None:
    response = http.get(
        "/api/v1/ohlcv",
        params={"exchange": exchange, "symbol": "BTC/USD", "timeframe": timeframe, "start": START},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_timeframe"
    assert says in error["message"]
    assert "served natively: 1m, " in error["message"]
    assert "calendar months" in error["message"]


def test_a_price_type_series_is_derived_from_its_own_base(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    perpetual = "BTC/USDT:USDT"
    query = {"exchange": "binance", "symbol": perpetual, "price": "mark", "timeframe": "2d"}
    candles, pages = follow_pages(http, **query, start=START, end=END, limit=5)
    truth = simulator.truth("binance", perpetual, "1d", START, END + 2 * DAY, price="mark")
    two_days = aggregated(truth, lambda t: t - t % (2 * DAY), lambda b: START <= b < END)
    assert_same_candles(candles, two_days)
    assert {(page["price"], page["derived_from"]) for page in pages} == {("mark", "1d")}
