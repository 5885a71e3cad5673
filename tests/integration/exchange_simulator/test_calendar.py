"""The exchanges' own calendar timeframes through real ccxt over HTTP: each exchange's grid
(Binance weeks from Monday, 3 days at epoch multiples, calendar months; Crypto.com weeks from
Monday, 14 days from Monday 1970-01-05, months; Kraken weeks from Thursday), the forming
candle served, quiet periods missing, and truth() exactly the closed candles ccxt gets."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import ccxt.async_support as ccxt
import pytest

from cbtrade.models import Candle
from tests.exchange_simulator import ExchangeSimulator
from tests.exchange_simulator.core import PriceType
from tests.integration.exchange_simulator.conftest import Connect

DAY = 86_400_000
WEEK = 7 * DAY
LISTED = 1_704_067_200_000  # 2024-01-01, a Monday: the default listing
SYMBOL = {"binance": "BTC/USDT", "cryptocom": "BTC/USD", "kraken": "BTC/USD"}
PRICES: list[PriceType] = ["trade", "mark", "index", "premiumIndex"]


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 1000


def moment(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp / 1000, UTC)


def midnight_on(weekday: int) -> Callable[[int], bool]:
    """Whether a time is 00:00 UTC on ``weekday`` (Monday 0)."""
    return lambda t: t % DAY == 0 and moment(t).weekday() == weekday


def month_start(timestamp: int) -> bool:
    return timestamp % DAY == 0 and moment(timestamp).day == 1


def next_month(timestamp: int) -> int:
    """The start of the month after the one holding ``timestamp``."""
    day = moment(timestamp)
    return utc(f"{day.year + day.month // 12}-{day.month % 12 + 1:02d}-01")


def as_candles(rows: list[list[Any]]) -> list[Candle]:
    return [Candle(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]


async def every_candle(exchange: Any, exchange_id: str, timeframe: str) -> Any:
    """Every candle since the listing, in one request: Binance's from ``since``, Crypto.com's
    newest 300 and Kraken's newest 720 hold them all."""
    since = LISTED if exchange_id == "binance" else None
    return await exchange.fetch_ohlcv(SYMBOL[exchange_id], timeframe, since, 1000)


# (exchange, timeframe, whether a time is on its grid, the first open at or after the
# listing, the open of a quiet period: its index % 97 == 0)
GRIDS = [
    ("binance", "1w", midnight_on(0), LISTED, utc("2025-10-13")),
    ("binance", "3d", lambda t: t % (3 * DAY) == 0, utc("2024-01-03"), utc("2025-10-09")),
    ("binance", "1M", month_start, LISTED, utc("2026-08-01")),
    ("cryptocom", "1w", midnight_on(0), LISTED, utc("2025-10-13")),
    (
        "cryptocom",
        "2w",
        lambda t: (t - utc("1970-01-05")) % (2 * WEEK) == 0,
        utc("2024-01-08"),
        utc("2025-10-13"),
    ),
    ("cryptocom", "1M", month_start, LISTED, utc("2026-08-01")),
    ("kraken", "1w", midnight_on(3), utc("2024-01-04"), utc("2025-10-09")),
]


@pytest.mark.parametrize(
    ("exchange_id", "timeframe", "on_grid", "first", "quiet"),
    GRIDS,
    ids=[f"{g[0]}-{g[1]}" for g in GRIDS],
)
async def test_calendar_candles_open_on_the_exchanges_grid(
    simulator: ExchangeSimulator,
    connect: Connect,
    exchange_id: str,
    timeframe: str,
    on_grid: Callable[[int], bool],
    first: int,
    quiet: int,
) -> None:
    rows = await every_candle(connect(exchange_id), exchange_id, timeframe)
    opens = [r[0] for r in rows]
    assert all(on_grid(t) for t in opens)
    assert opens[0] == first  # the first candle opens at or after the listing
    assert opens == sorted(set(opens))
    assert quiet not in opens
    assert any(a < quiet < b for a, b in pairwise(opens))
    truth = simulator.truth(exchange_id, SYMBOL[exchange_id], timeframe, 0, 2**62)
    assert as_candles(rows[:-1]) == truth  # all but the forming candle
    assert truth[-1].timestamp < opens[-1] <= time.time_ns() // 1_000_000


@pytest.mark.parametrize("price", PRICES)
async def test_binance_futures_price_candles_open_on_mondays(
    simulator: ExchangeSimulator, connect: Connect, price: PriceType
) -> None:
    symbol = "BTC/USDT:USDT"
    rows = await connect("binance").fetch_ohlcv(symbol, "1w", LISTED, 1000, {"price": price})
    assert all(midnight_on(0)(r[0]) for r in rows)
    assert utc("2025-10-13") not in [r[0] for r in rows]  # quiet for every price type
    truth = simulator.truth("binance", symbol, "1w", LISTED, 2**62, price=price)
    assert as_candles(rows[:-1]) == truth


async def test_binance_klines_close_a_millisecond_before_the_next_period(
    connect: Connect,
) -> None:
    exchange = connect("binance")
    request = {"symbol": "BTCUSDT", "interval": "1M", "startTime": LISTED, "limit": 1000}
    months = await exchange.publicGetKlines(request)
    assert [row[6] for row in months] == [next_month(row[0]) - 1 for row in months]
    mark = await exchange.fapiPublicGetMarkPriceKlines(request | {"interval": "1w"})
    assert {row[6] - row[0] for row in mark} == {WEEK - 1}
    assert {row[8] for row in mark} == {WEEK // 1000}  # seconds of price data


async def test_calendar_windows_keep_each_endpoints_semantics(connect: Connect) -> None:
    march, april = utc("2024-03-01"), utc("2024-04-01")
    binance = connect("binance")  # from startTime (inclusive) on, limit candles
    weeks = await binance.fetch_ohlcv("BTC/USDT", "1w", LISTED + 1, 2)
    assert [r[0] for r in weeks] == [LISTED + WEEK, LISTED + 2 * WEEK]
    months = await binance.fetch_ohlcv("BTC/USDT", "1M", march, 2)
    assert [r[0] for r in months] == [march, april]
    # ccxt asks Crypto.com for the newest 2 of [since - 30 days, since + 60 days)
    months = await connect("cryptocom").fetch_ohlcv("BTC/USD", "1M", march, 2)
    assert [r[0] for r in months] == [march, april]
    request = {"pair": "XXBTZUSD", "interval": 10080, "since": utc("2024-01-04") // 1000}
    answer = await connect("kraken").publicGetOHLC(request)  # the newest 720, after since
    weeks = answer["result"]["XXBTZUSD"]
    assert weeks[0][0] * 1000 == utc("2024-01-11")
    assert answer["result"]["last"] == weeks[-1][0]  # the forming week's open


async def test_kraken_fifteen_day_interval_is_not_served(connect: Connect) -> None:
    with pytest.raises(ccxt.ExchangeError):  # an error answer: interval 21600 is unknown
        await connect("kraken").fetch_ohlcv("BTC/USD", "2w")
