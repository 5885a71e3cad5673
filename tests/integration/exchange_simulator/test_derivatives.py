"""The simulator's derivatives through real ccxt over HTTP: Binance USDⓈ-M perpetuals and a
delivered quarterly future, Crypto.com's perpetual, their mark/index/premium-index candles
and their funding rate history, each exactly what truth() and funding_truth() say."""

from __future__ import annotations

import time
from itertools import pairwise
from typing import Any

import ccxt.async_support as ccxt
import pytest

from cbtrade.models import Candle
from tests.exchange_simulator import ExchangeSimulator, SimulatedMarket
from tests.exchange_simulator.core import (
    EXPIRY_240329,
    FEB_15_2024,
    MAR_2024,
    FundingEvent,
    PriceType,
)
from tests.integration.exchange_simulator.conftest import Connect

H1 = 3_600_000
H8 = 8 * H1
D1 = 24 * H1
LISTED = 1_704_067_200_000  # 2024-01-01
FEB = 1_706_745_600_000  # 2024-02-01
PERP, ETH_PERP, QUARTERLY = "BTC/USDT:USDT", "ETH/USDT:USDT", "BTC/USDT:USDT-240329"
CRYPTOCOM_PERP = "BTC/USD:USD"
PRICES: list[PriceType] = ["trade", "mark", "index", "premiumIndex"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def as_candles(rows: list[list[Any]]) -> list[Candle]:
    return [Candle(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]


def as_events(rates: list[dict[str, Any]]) -> list[FundingEvent]:
    return [FundingEvent(r["timestamp"], r["fundingRate"]) for r in rates]


async def test_binance_lists_perpetuals_and_the_delivered_quarterly(connect: Connect) -> None:
    markets = await connect("binance").load_markets()
    perp = markets[PERP]
    assert (perp["type"], perp["linear"], perp["active"], perp["settle"]) == (
        "swap",
        True,
        True,
        "USDT",
    )
    assert (perp["id"], perp["expiry"], perp["created"]) == ("BTCUSDT", None, LISTED)
    assert markets[ETH_PERP]["created"] == FEB
    future = markets[QUARTERLY]
    assert (future["type"], future["id"], future["expiry"]) == (
        "future",
        "BTCUSDT_240329",
        EXPIRY_240329,
    )
    assert future["expiryDatetime"] == "2024-03-29T08:00:00.000Z"
    assert future["active"] is False  # delivered: listed as SETTLING
    assert markets["BTC/USDT"]["spot"] is True  # same id as the perpetual, another API


async def test_cryptocom_lists_its_perpetual(connect: Connect) -> None:
    markets = await connect("cryptocom").load_markets()
    perp = markets[CRYPTOCOM_PERP]
    assert (perp["id"], perp["type"], perp["settle"], perp["contractSize"]) == (
        "BTCUSD-PERP",
        "swap",
        "USD",
        1.0,
    )
    assert perp["active"] is True
    assert perp["linear"] is True


@pytest.mark.parametrize("price", PRICES)
async def test_binance_price_candles_are_the_truth(
    simulator: ExchangeSimulator, connect: Connect, price: PriceType
) -> None:
    exchange = connect("binance")
    since, limit = LISTED + 90 * H1, 200  # crosses the quiet interval
    rows = await exchange.fetch_ohlcv(PERP, "1h", since, limit, {"price": price})
    truth = simulator.truth("binance", PERP, "1h", since, since + 2 * limit * H1, price=price)
    assert as_candles(rows) == truth[:limit]
    assert len(simulator.truth("binance", PERP, "1h", since, since + limit * H1)) < limit
    assert simulator.candle_requests("binance") == 1
    assert simulator.funding_requests("binance") == 0


async def test_price_types_differ_and_have_their_shapes(simulator: ExchangeSimulator) -> None:
    start, end = LISTED, LISTED + 50 * H1
    series = {p: simulator.truth("binance", PERP, "1h", start, end, price=p) for p in PRICES}
    stamps = [c.timestamp for c in series["trade"]]
    assert len(stamps) == 49  # one quiet hour, for every price type
    assert all([c.timestamp for c in candles] == stamps for candles in series.values())
    for price in ("mark", "index", "premiumIndex"):
        assert [c.close for c in series[price]] != [c.close for c in series["trade"]]
        assert all(c.volume == 0 for c in series[price])
    premium = series["premiumIndex"]
    assert all(-0.0011 < v < 0.0011 for c in premium for v in c[1:5])
    assert any(c.close < 0 for c in premium)
    assert any(c.close > 0 for c in premium)
    assert all(float(f"{v:.8f}") == v for c in premium for v in c[1:5])
    for c in premium + series["mark"]:
        assert c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high
    # the index is the pair's: the quarterly's is the perpetual's while both trade
    assert simulator.truth("binance", QUARTERLY, "1h", start, end, price="index") == series["index"]
    assert simulator.truth("binance", QUARTERLY, "1h", start, end, price="mark") != series["mark"]


async def test_binance_index_klines_go_by_pair_for_the_quarterly(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("binance")
    since = EXPIRY_240329 - 5 * H1
    rows = await exchange.fetch_ohlcv(QUARTERLY, "1h", since, 10, {"price": "index"})
    truth = simulator.truth("binance", QUARTERLY, "1h", since, since + 10 * H1, price="index")
    assert as_candles(rows) == truth
    assert len(truth) == 10  # the pair's index outlives the quarterly


async def test_the_quarterly_has_no_candle_from_its_expiry(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("binance")
    since = EXPIRY_240329 - 5 * H1
    for price in ("trade", "mark", "premiumIndex"):
        rows = await exchange.fetch_ohlcv(QUARTERLY, "1h", since, 10, {"price": price})
        truth = simulator.truth("binance", QUARTERLY, "1h", since, since + 10 * H1, price=price)
        assert as_candles(rows) == truth
        assert truth[-1].timestamp == EXPIRY_240329 - H1
    assert await exchange.fetch_ohlcv(QUARTERLY, "1h", EXPIRY_240329, 10) == []
    assert simulator.funding_truth("binance", QUARTERLY, LISTED, now_ms()) == []


async def test_binance_futures_klines_cap_at_1500_and_until_is_inclusive(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("binance")
    await exchange.load_markets()
    rows = await exchange.fapiPublicGetMarkPriceKlines(
        {"symbol": "BTCUSDT", "interval": "1m", "startTime": LISTED, "limit": 2000}
    )
    assert len(rows) == 1500
    assert rows[0][5] == "0"  # Binance sends no volume for a mark price candle
    assert rows[0][8] == 60  # but the seconds of price data it is made of
    until = LISTED + 20 * H1
    rows = await exchange.fetch_ohlcv(PERP, "1h", LISTED + 10 * H1, None, {"until": until})
    assert rows[-1][0] == until


async def test_binance_funding_history_pages_across_the_interval_change(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("binance")
    start, end = MAR_2024 - 40 * H8, MAR_2024 + 60 * 4 * H1
    truth = simulator.funding_truth("binance", PERP, start, end)
    steps = {b.timestamp - a.timestamp for a, b in pairwise(truth)}
    assert steps == {H8, 4 * H1}
    assert len(truth) == 100
    got: list[FundingEvent] = []
    since = start
    while since < end:
        page = as_events(
            await exchange.fetch_funding_rate_history(PERP, since, 30, {"until": end - 1})
        )
        if not page:
            break
        got += page
        since = page[-1].timestamp + 1
    assert got == truth
    assert simulator.funding_requests("binance") == 5  # 30 + 30 + 30 + 10, then none
    assert simulator.candle_requests("binance") == 0


async def test_binance_funding_rate_wire_format(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("binance")
    await exchange.load_markets()
    rows = await exchange.fapiPublicGetFundingRate({"symbol": "ETHUSDT", "startTime": 0})
    assert len(rows) == 100  # the default limit, from the listing
    assert rows[0]["fundingTime"] == FEB
    assert set(rows[0]) == {"symbol", "fundingTime", "fundingRate", "markPrice"}
    assert len(rows[0]["fundingRate"].split(".")[1]) == 8  # a string of 8 decimals
    truth = simulator.funding_truth("binance", ETH_PERP, FEB, FEB_15_2024 + 100 * H1)
    assert [(r["fundingTime"], float(r["fundingRate"])) for r in rows] == truth[:100]
    assert rows[42]["fundingTime"] == FEB_15_2024  # 14 days of 8h, then hourly
    assert rows[42]["fundingTime"] - rows[41]["fundingTime"] == H8
    assert rows[43]["fundingTime"] - rows[42]["fundingTime"] == H1
    newest = await exchange.fapiPublicGetFundingRate({"symbol": "ETHUSDT", "limit": 3})
    now = now_ms()
    assert [r["fundingTime"] for r in newest] == [
        e.timestamp for e in simulator.funding_truth("binance", ETH_PERP, now - 5 * H1, now + 1)
    ][-3:]
    with pytest.raises(ccxt.BadSymbol):
        await exchange.fapiPublicGetFundingRate({"symbol": "DOGEUSDT"})
    assert simulator.funding_requests("binance") == 3


async def test_funding_truth_is_published_events_only(simulator: ExchangeSimulator) -> None:
    now = now_ms()
    recent = simulator.funding_truth("binance", PERP, now - 2 * D1, now + D1)
    assert recent[-1].timestamp <= now < recent[-1].timestamp + 4 * H1
    assert simulator.funding_truth("binance", PERP, 0, LISTED + 1)[0].timestamp == LISTED
    assert simulator.funding_truth("binance", PERP, 0, LISTED) == []
    assert simulator.funding_truth("binance", "BTC/USDT", 0, now) == []  # spot pays none
    at = LISTED + 10 * H8
    assert simulator.funding_truth("binance", PERP, 0, now, now=at)[-1].timestamp == at
    rates = [e.rate for e in simulator.funding_truth("binance", PERP, LISTED, MAR_2024)]
    assert all(-0.0001 <= r <= 0.0002 and round(r, 8) == r for r in rates)
    assert len(set(rates)) > len(rates) // 2


async def test_funding_stops_at_the_delisting(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    ended = LISTED + 10 * D1
    simulator.set_markets(
        "binance",
        [SimulatedMarket(PERP, LISTED, delisted_at=ended, funding=((LISTED, H8),))],
    )
    truth = simulator.funding_truth("binance", PERP, 0, now_ms())
    assert truth[-1].timestamp == ended - H8
    exchange = connect("binance")
    assert as_events(await exchange.fetch_funding_rate_history(PERP, ended - D1, 100)) == truth[-3:]
    assert (await exchange.load_markets())[PERP]["active"] is False


async def test_funding_faults_are_counted_and_raise(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("binance")
    await exchange.load_markets()
    simulator.inject_faults("binance", status=503, count=1)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await exchange.fetch_funding_rate_history(PERP, LISTED, 5)
    assert len(await exchange.fetch_funding_rate_history(PERP, LISTED, 5)) == 5
    assert simulator.funding_requests("binance") == 2


async def test_cryptocom_candles_of_the_perpetual_are_the_truth(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    since, limit = LISTED + 90 * H1, 100
    rows = await connect("cryptocom").fetch_ohlcv(CRYPTOCOM_PERP, "1h", since, limit)
    answered = simulator.truth("cryptocom", CRYPTOCOM_PERP, "1h", since - H1, since + limit * H1)
    assert as_candles(rows) == [c for c in answered[-limit:] if c.timestamp >= since]
    assert as_candles(rows) != simulator.truth(
        "cryptocom", "BTC/USD", "1h", since, since + limit * H1
    )


async def test_cryptocom_funding_history_pages_back_from_until(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("cryptocom")
    start, end = LISTED + 5 * D1, LISTED + 30 * D1 + 7 * H1
    truth = simulator.funding_truth("cryptocom", CRYPTOCOM_PERP, start, end)
    assert len(truth) == 25 * 24 + 7
    got: list[FundingEvent] = []
    until = end
    while until > start:
        page = as_events(
            await exchange.fetch_funding_rate_history(CRYPTOCOM_PERP, start, 300, {"until": until})
        )
        got = page + got
        if len(page) < 300:
            break
        until = page[0].timestamp
    assert got == truth
    assert simulator.funding_requests("cryptocom") == 3


async def test_cryptocom_valuations_wire_format(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("cryptocom")
    start, end = LISTED + 10 * H1, LISTED + 20 * H1
    params = {"instrument_name": "BTCUSD-PERP", "start_ts": start, "end_ts": end, "count": 4}
    reply = await exchange.v1PublicGetPublicGetValuations(
        params | {"valuation_type": "funding_hist"}
    )
    assert reply["method"] == "public/get-valuations"
    assert reply["result"]["instrument_name"] == "BTCUSD-PERP"
    data = reply["result"]["data"]
    newest = simulator.funding_truth("cryptocom", CRYPTOCOM_PERP, start, end)[-4:]
    assert [(d["t"], float(d["v"])) for d in data] == newest[::-1]  # newest first
    assert all("e" not in d["v"] for d in data)
    simulator.set_window_style("cryptocom", "earliest")
    reply = await exchange.v1PublicGetPublicGetValuations(
        params | {"valuation_type": "funding_hist"}
    )
    oldest = simulator.funding_truth("cryptocom", CRYPTOCOM_PERP, start, end)[:4]
    assert [d["t"] for d in reply["result"]["data"]] == [e.timestamp for e in oldest[::-1]]
    valuations: list[tuple[str, PriceType]] = [("mark_price", "mark"), ("index_price", "index")]
    for kind, price in valuations:
        reply = await exchange.v1PublicGetPublicGetValuations(params | {"valuation_type": kind})
        minutes = simulator.truth("cryptocom", CRYPTOCOM_PERP, "1m", start, end, price=price)
        assert [(d["t"], float(d["v"])) for d in reply["result"]["data"]] == [
            (c.timestamp, c.open) for c in minutes[:4][::-1]
        ]
    index = params | {"instrument_name": "BTCUSD-INDEX", "valuation_type": "index_price"}
    by_index_name = await exchange.v1PublicGetPublicGetValuations(index)
    assert by_index_name["result"]["data"] == reply["result"]["data"]
    for wrong in (
        {"instrument_name": "DOGEUSD-PERP", "valuation_type": "funding_hist"},
        {"instrument_name": "BTC_USD", "valuation_type": "funding_hist"},  # spot pays none
        {"valuation_type": "no_such_type"},
    ):
        with pytest.raises(ccxt.BadRequest):
            await exchange.v1PublicGetPublicGetValuations(params | wrong)
    assert simulator.funding_requests("cryptocom") == 8
    assert simulator.candle_requests("cryptocom") == 0
