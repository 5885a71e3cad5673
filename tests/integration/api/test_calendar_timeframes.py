"""The exchanges' own calendar timeframes over real HTTP (uvicorn), on both storage backends
(local disk and Azurite), through real ccxt against the exchange simulator, whose grids
differ by exchange: Binance weeks from Monday, ``3d`` at epoch multiples and calendar months;
Crypto.com weeks from Monday, ``2w`` every 14 days and months; Kraken weeks from Thursday.
The service assumes none of them: it stores the candles at the open times given."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime

import httpx
import pyarrow as pa
import pytest

from cbtrade.models import Candle
from tests.exchange_simulator import ExchangeSimulator
from tests.exchange_simulator.core import EXPIRY_240329
from tests.fixtures.aggregation import aggregated, assert_same_candles
from tests.fixtures.ohlcv_pages import follow_pages

DAY = 86_400_000
WEEK = 7 * DAY
LISTED = 1_704_067_200_000  # 2024-01-01T00:00:00Z, the simulated listing
END = 1_790_812_800_000  # 2026-10-01T00:00:00Z: every candle before it has closed


def weekday(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp / 1000, UTC).strftime("%A")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.mark.parametrize("style", ["latest", "earliest"])
@pytest.mark.parametrize(
    ("exchange", "symbol", "timeframe", "price", "opens_on"),
    [
        ("binance", "BTC/USDT", "1w", "trade", {"Monday"}),
        ("binance", "BTC/USDT", "1M", "trade", None),
        ("binance", "BTC/USDT", "3d", "trade", None),
        ("binance", "BTC/USDT:USDT", "1w", "mark", {"Monday"}),
        ("binance", "BTC/USDT:USDT", "1w", "index", {"Monday"}),
        ("cryptocom", "BTC/USD", "1w", "trade", {"Monday"}),
        ("cryptocom", "BTC/USD", "2w", "trade", {"Monday"}),
        ("cryptocom", "BTC/USD", "1M", "trade", None),
    ],
)
def test_calendar_candles_from_the_epoch_equal_the_exchange_truth_and_a_reread_is_free(
    http: httpx.Client,
    simulator: ExchangeSimulator,
    style: str,
    exchange: str,
    symbol: str,
    timeframe: str,
    price: str,
    opens_on: set[str] | None,
) -> None:
    simulator.set_window_style(exchange, style)  # type: ignore[arg-type]
    query = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe, "price": price}
    candles, pages = follow_pages(http, **query, start=0, end=END, limit=10)
    truth = simulator.truth(exchange, symbol, timeframe, 0, END, price=price)  # type: ignore[arg-type]
    assert candles == truth
    assert len(pages) == -(-len(truth) // 10)
    assert all("derived_from" not in page and page["header"] is None for page in pages)
    assert {page["timeframe"] for page in pages} == {timeframe}
    if opens_on is not None:
        assert {weekday(c.timestamp) for c in candles} == opens_on
    if timeframe == "1M":
        assert {datetime.fromtimestamp(c.timestamp / 1000, UTC).day for c in candles} == {1}
    calls = simulator.candle_requests(exchange)
    again, _ = follow_pages(http, **query, start=0, end=END, limit=10)
    assert again == candles
    assert simulator.candle_requests(exchange) == calls


def test_kraken_weeks_open_on_thursday_and_are_kept_for_720_weeks(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    query = {"exchange": "kraken", "symbol": "BTC/USD", "timeframe": "1w"}
    candles, _ = follow_pages(http, **query, start=LISTED, end=END)
    assert candles == simulator.truth("kraken", "BTC/USD", "1w", LISTED, END)
    assert {weekday(c.timestamp) for c in candles} == {"Thursday"}
    calls = simulator.candle_requests("kraken")
    assert follow_pages(http, **query, start=LISTED, end=END)[0] == candles
    assert simulator.candle_requests("kraken") == calls
    # Kraken keeps only its newest 720 candles: from the epoch is a clear 422.
    response = http.get("/api/v1/ohlcv", params={**query, "start": 0, "end": END})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "exchange_history_unavailable"


def test_kraken_2w_is_derived_because_its_own_is_15_days(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    # Two weeks from Monday 1970-01-05: Monday 2025-06-09 to Monday 2025-09-01 is six.
    start, end = 1_749_427_200_000, 1_756_684_800_000
    query = {"exchange": "kraken", "symbol": "BTC/USD", "timeframe": "2w"}
    candles, pages = follow_pages(http, **query, start=start, end=end)
    assert {page["derived_from"] for page in pages} == {"1d"}
    days = simulator.truth("kraken", "BTC/USD", "1d", start, end)
    two_weeks = aggregated(days, lambda t: t - (t - 4 * DAY) % (2 * WEEK), bool)
    assert len(two_weeks) == 6
    assert_same_candles(candles, two_weeks)


def test_a_read_up_to_now_serves_closed_candles_only(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    query = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1w", "start": LISTED}
    before = now_ms()
    candles, _ = follow_pages(http, **query)
    after = now_ms()
    # Whichever moment in between the service took for now, it served what had closed.
    assert candles in (
        simulator.truth("binance", "BTC/USDT", "1w", LISTED, before, now=before),
        simulator.truth("binance", "BTC/USDT", "1w", LISTED, after, now=after),
    )
    assert candles[-1].timestamp + WEEK <= after


def test_an_expired_future_serves_its_weeks_and_asks_nothing_after_expiry(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    future = "BTC/USDT:USDT-240329"
    query = {"exchange": "binance", "symbol": future, "timeframe": "1w"}
    candles, _ = follow_pages(http, **query, start=0, end=END)
    assert candles == simulator.truth("binance", future, "1w", 0, END)
    assert candles[-1].timestamp < EXPIRY_240329 <= candles[-1].timestamp + WEEK
    calls = simulator.candle_requests("binance")
    # Up to now: the years after expiry are recorded as fetched without a call.
    follow_pages(http, **query, start=END)
    assert simulator.candle_requests("binance") == calls


def test_calendar_pages_in_csv_and_arrow_hold_the_json_candles(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    query = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1M", "end": END}
    candles, _ = follow_pages(http, **query, start=0)
    csv = http.get("/api/v1/ohlcv", params={**query, "start": 0, "format": "csv"})
    assert csv.status_code == 200, csv.text
    lines = csv.text.strip().splitlines()
    assert lines[0] == "timestamp,open,high,low,close,volume"
    assert [int(line.split(",")[0]) for line in lines[1:]] == [c.timestamp for c in candles]
    arrow = http.get("/api/v1/ohlcv", params={**query, "start": 0, "format": "arrow"})
    assert arrow.status_code == 200, arrow.text
    table = pa.ipc.open_stream(io.BytesIO(arrow.content)).read_all()
    assert [Candle(*row.values()) for row in table.to_pylist()] == candles


def test_the_catalog_lists_calendar_series_with_their_quiet_periods(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    spot = {"exchange": "binance", "symbol": "BTC/USDT"}
    follow_pages(http, **spot, timeframe="1w", start=0, end=END)
    follow_pages(http, **spot, timeframe="1M", start=LISTED, end=END)
    follow_pages(http, **spot, timeframe="5m", start=LISTED, end=LISTED + DAY)
    response = http.get("/api/v1/series", params={"exchange": "binance", "symbol": "BTC/USDT"})
    assert response.status_code == 200, response.text
    entries = response.json()["series"]
    assert [(e["symbol"], e["timeframe"]) for e in entries] == [
        ("BTC/USDT", "5m"), ("BTC/USDT", "1w"), ("BTC/USDT", "1M")
    ]  # fmt: skip
    week, month = entries[1], entries[2]
    weeks = simulator.truth("binance", "BTC/USDT", "1w", 0, week["last"] + 1)
    assert (week["first"], week["last"], week["candles"]) == (
        LISTED, weeks[-1].timestamp, len(weeks)
    )  # fmt: skip
    assert week["not_covered"] == []
    # Quiet weeks (the simulator's 2025-10-13 among them) are the grid's weeks without one.
    assert week["missing_candles"] == (week["last"] - LISTED) // WEEK + 1 - len(weeks) > 0
    months = simulator.truth("binance", "BTC/USDT", "1M", 0, month["last"] + 1)
    assert (month["first"], month["candles"]) == (LISTED, len(months))
    last = datetime.fromtimestamp(month["last"] / 1000, UTC)
    assert month["missing_candles"] == (last.year - 2024) * 12 + last.month - len(months) > 0
    assert month["first_time"] == "2024-01-01T00:00:00Z"
