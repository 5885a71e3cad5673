"""The exchange simulator itself, through the real ccxt code over HTTP: each wire format
loads as markets, answers candle windows the way the real exchange does, fails in the
exchange's own error format, and counts what it is asked."""

from __future__ import annotations

import time
from typing import Any

import ccxt.async_support as ccxt
import pytest

from cbtrade.models import Candle
from cbtrade.timeframes import timeframe_to_ms
from tests.exchange_simulator import ExchangeSimulator, SimulatedMarket, point_ccxt_at
from tests.integration.exchange_simulator.conftest import Connect

M5 = 300_000
H1 = 3_600_000
D1 = 86_400_000
LISTED = 1_704_067_200_000  # 2024-01-01, the default listing
EXCHANGES = ["cryptocom", "binance", "kraken", "coinbase"]
SYMBOL = {"cryptocom": "BTC/USD", "binance": "BTC/USDT", "kraken": "BTC/USD", "coinbase": "BTC/USD"}
MARKETS = {
    "cryptocom": ["BTC/USD", "BTC/USD:USD", "ETH/USD"],
    "binance": ["BTC/USDT", "BTC/USDT:USDT", "BTC/USDT:USDT-240329", "ETH/USDT", "ETH/USDT:USDT"],
    "kraken": ["BTC/USD"],
    "coinbase": ["BTC/USD", "ETH/USD"],
}
SPOT = {exchange: [s for s in symbols if ":" not in s] for exchange, symbols in MARKETS.items()}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def expected(
    simulator: ExchangeSimulator, exchange_id: str, timeframe: str, since: int, limit: int
) -> list[Candle]:
    """What ccxt's fetch_ohlcv(since, limit) gets for a past window: Binance answers the
    first ``limit`` candles from ``startTime``; ccxt asks Crypto.com for the latest ``limit``
    of ``[since - tf, since + limit * tf)`` and Coinbase for ``[since, since + limit * tf]``
    (both inclusive), then keeps ``limit`` of those from ``since`` on."""
    step = timeframe_to_ms(timeframe)
    symbol = SYMBOL[exchange_id]
    if exchange_id == "cryptocom":
        answered = simulator.truth(
            exchange_id, symbol, timeframe, since - step, since + limit * step
        )
        return [c for c in answered[-limit:] if c.timestamp >= since][:limit]
    end = since + (2 * limit if exchange_id == "binance" else limit + 1) * step
    return simulator.truth(exchange_id, SYMBOL[exchange_id], timeframe, since, end)[:limit]


def as_candles(rows: list[list[Any]]) -> list[Candle]:
    return [Candle(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_load_markets_lists_the_simulated_markets(
    simulator: ExchangeSimulator, connect: Connect, exchange_id: str
) -> None:
    exchange = connect(exchange_id)
    markets = await exchange.load_markets()
    assert sorted(markets) == MARKETS[exchange_id]
    assert all(markets[s]["spot"] == (s in SPOT[exchange_id]) for s in markets)
    assert simulator.market_requests(exchange_id) >= 1
    assert simulator.candle_requests(exchange_id) == 0


async def test_set_markets_replaces_the_listing(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    simulator.set_markets("binance", [SimulatedMarket("SOL/USDT", LISTED)])
    assert sorted(await connect("binance").load_markets()) == ["SOL/USDT"]
    simulator.reset()
    assert sorted(await connect("binance").load_markets()) == MARKETS["binance"]


async def test_binance_spot_only_option_loads_the_spot_markets(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("binance", options={"fetchMarkets": {"types": ["spot"]}})
    assert sorted(await exchange.load_markets()) == SPOT["binance"]
    assert simulator.market_requests("binance") == 1  # spot exchangeInfo alone


@pytest.mark.parametrize("exchange_id", ["cryptocom", "binance", "coinbase"])
async def test_a_past_window_is_exactly_the_truth(
    simulator: ExchangeSimulator, connect: Connect, exchange_id: str
) -> None:
    exchange = connect(exchange_id)
    await exchange.load_markets()
    since, limit = LISTED + 90 * M5, 100  # crosses the quiet interval 97
    rows = await exchange.fetch_ohlcv(SYMBOL[exchange_id], "5m", since, limit)
    assert (
        len(simulator.truth(exchange_id, SYMBOL[exchange_id], "5m", since, since + limit * M5))
        < limit
    )
    assert as_candles(rows) == expected(simulator, exchange_id, "5m", since, limit)
    assert simulator.candle_requests(exchange_id) == 1


@pytest.mark.parametrize("exchange_id", ["cryptocom", "binance", "coinbase"])
async def test_nothing_before_the_listing(
    simulator: ExchangeSimulator, connect: Connect, exchange_id: str
) -> None:
    exchange = connect(exchange_id)
    since = LISTED - 50 * H1
    rows = await exchange.fetch_ohlcv(SYMBOL[exchange_id], "1h", since, 100)
    assert rows[0][0] == LISTED
    assert as_candles(rows) == expected(simulator, exchange_id, "1h", since, 100)


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_a_window_reaching_now_adds_only_the_forming_candle(
    simulator: ExchangeSimulator, connect: Connect, exchange_id: str
) -> None:
    exchange = connect(exchange_id)
    await exchange.load_markets()
    symbol = SYMBOL[exchange_id]
    now = now_ms()
    forming = now - now % D1
    since = forming - 20 * D1
    rows = as_candles(await exchange.fetch_ohlcv(symbol, "1d", since, 40))
    closed = simulator.truth(exchange_id, symbol, "1d", since, forming + D1, now=now)
    with_forming = simulator.truth(exchange_id, symbol, "1d", since, forming + D1, now=forming + D1)
    assert closed
    assert closed[-1].timestamp + D1 <= now
    assert rows == with_forming
    assert len(with_forming) - len(closed) in (0, 1)  # 0 only if today is a quiet interval


@pytest.mark.parametrize("style", ["latest", "earliest"])
async def test_cryptocom_over_full_window_is_answered_from_the_style_end(
    simulator: ExchangeSimulator, connect: Connect, style: str
) -> None:
    simulator.set_window_style("cryptocom", style)  # type: ignore[arg-type]
    exchange = connect("cryptocom")
    start, end = LISTED + 1_000 * M5, LISTED + 1_020 * M5
    reply = await exchange.v1_public_get_public_get_candlestick(
        {
            "instrument_name": "BTC_USD",
            "timeframe": "5m",
            "count": 10,
            "start_ts": start,
            "end_ts": end,
        }
    )
    data = reply["result"]["data"]
    window = simulator.truth("cryptocom", "BTC/USD", "5m", start, end)  # end_ts exclusive
    expected = window[-10:] if style == "latest" else window[:10]
    assert [d["t"] for d in data] == [c.timestamp for c in expected]
    assert [float(d["c"]) for d in data] == [c.close for c in expected]


async def test_cryptocom_count_is_capped_at_300(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("cryptocom")
    start = LISTED + 2_000 * M5
    reply = await exchange.v1_public_get_public_get_candlestick(
        {
            "instrument_name": "BTC_USD",
            "timeframe": "5m",
            "count": 1_000,
            "start_ts": start,
            "end_ts": start + 2_000 * M5,
        }
    )
    assert len(reply["result"]["data"]) == simulator.max_per_call("cryptocom") == 300


@pytest.mark.parametrize("style", ["earliest", "latest"])
async def test_binance_klines_window_and_style(
    simulator: ExchangeSimulator, connect: Connect, style: str
) -> None:
    simulator.set_window_style("binance", style)  # type: ignore[arg-type]
    exchange = connect("binance")
    start, end = LISTED + 1_000 * M5, LISTED + 1_020 * M5
    rows = await exchange.public_get_klines(
        {"symbol": "BTCUSDT", "interval": "5m", "startTime": start, "endTime": end, "limit": 10}
    )
    inclusive = simulator.truth("binance", "BTC/USDT", "5m", start, end + M5)
    expected = inclusive[-10:] if style == "latest" else inclusive[:10]
    assert [r[0] for r in rows] == [c.timestamp for c in expected]
    assert rows[0][6] == rows[0][0] + M5 - 1  # close time


async def test_binance_defaults_to_the_earliest_answer(simulator: ExchangeSimulator) -> None:
    # the class default, not something a test set
    assert simulator.max_per_call("binance") == 1000
    exchange = ccxt.binance({"enableRateLimit": False})
    exchange.timeout_on_exit = 0
    point_ccxt_at(exchange, simulator.origin)
    try:
        start = LISTED + 5_000 * M5
        rows = await exchange.public_get_klines(
            {"symbol": "BTCUSDT", "interval": "5m", "startTime": start, "limit": 1_500}
        )
    finally:
        await exchange.close()
    assert len(rows) == 1000
    assert rows[0][0] == start or rows[0][0] == start + M5


async def test_kraken_keeps_only_the_newest_720_and_answers_after_since(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("kraken")
    reply = await exchange.public_get_ohlc({"pair": "XXBTZUSD", "interval": 60, "since": 0})
    rows = reply["result"]["XXBTZUSD"]
    now = now_ms()
    forming = now - now % H1
    oldest_kept = forming - 719 * H1
    assert reply["result"]["last"] == forming // 1000
    assert [r[0] * 1000 for r in rows] == [
        c.timestamp
        for c in simulator.truth(
            "kraken", "BTC/USD", "1h", oldest_kept, forming + H1, now=forming + H1
        )
    ]
    since = (forming - 10 * H1) // 1000
    recent = await exchange.public_get_ohlc({"pair": "XXBTZUSD", "interval": 60, "since": since})
    assert all(r[0] > since for r in recent["result"]["XXBTZUSD"])
    assert len(recent["result"]["XXBTZUSD"]) <= 10


async def test_coinbase_candles_come_newest_first_within_start_and_end(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("coinbase")
    start, end = LISTED + 1_000 * M5, LISTED + 1_020 * M5
    reply = await exchange.v3_public_get_brokerage_market_products_product_id_candles(
        {
            "product_id": "BTC-USD",
            "granularity": "FIVE_MINUTE",
            "start": str(start // 1000),
            "end": str(end // 1000),
        }
    )
    starts = [int(c["start"]) * 1000 for c in reply["candles"]]
    inclusive = simulator.truth("coinbase", "BTC/USD", "5m", start, end + M5)
    assert starts == [c.timestamp for c in reversed(inclusive)]


@pytest.mark.parametrize("exchange_id", EXCHANGES)
@pytest.mark.parametrize(
    ("status", "raised"),
    [
        (429, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)),
        (500, (ccxt.ExchangeNotAvailable, ccxt.ExchangeError)),
        (503, (ccxt.ExchangeNotAvailable, ccxt.ExchangeError)),
    ],
)
async def test_injected_faults_raise_the_right_ccxt_error_then_clear(
    simulator: ExchangeSimulator,
    connect: Connect,
    exchange_id: str,
    status: int,
    raised: tuple[type[Exception], ...],
) -> None:
    exchange = connect(exchange_id)
    await exchange.load_markets()
    loads = simulator.market_requests(exchange_id)
    simulator.inject_faults(exchange_id, status=status, count=2)
    since = LISTED + 10 * H1
    for _ in range(2):
        with pytest.raises(raised):
            await exchange.fetch_ohlcv(SYMBOL[exchange_id], "1h", since, 5)
    rows = await exchange.fetch_ohlcv(SYMBOL[exchange_id], "1h", since, 5)
    assert rows
    assert simulator.candle_requests(exchange_id) == 3  # failed answers count too
    assert simulator.market_requests(exchange_id) == loads


async def test_faults_hit_the_market_endpoint_too(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    simulator.inject_faults("cryptocom", status=429, count=1)
    with pytest.raises(ccxt.RateLimitExceeded):
        await connect("cryptocom").load_markets()
    assert sorted(await connect("cryptocom").load_markets()) == MARKETS["cryptocom"]
    assert simulator.market_requests("cryptocom") == 2


@pytest.mark.parametrize(
    ("exchange_id", "raised"),
    [
        # ccxt's Crypto.com adapter reads any body without its envelope as a final error
        ("cryptocom", ccxt.ExchangeError),
        ("binance", ccxt.ExchangeNotAvailable),
        ("kraken", ccxt.ExchangeNotAvailable),
        ("coinbase", ccxt.ExchangeNotAvailable),
    ],
)
async def test_gateway_faults_answer_an_html_page_before_the_exchange(
    simulator: ExchangeSimulator, connect: Connect, exchange_id: str, raised: type[Exception]
) -> None:
    exchange = connect(exchange_id)
    await exchange.load_markets()
    simulator.inject_gateway_faults(status=502, count=1)
    with pytest.raises(raised, match="502 Bad Gateway") as caught:
        await exchange.fetch_ohlcv(SYMBOL[exchange_id], "1h", LISTED, 5)
    assert "<html>" in str(caught.value)
    assert simulator.candle_requests(exchange_id) == 0
    assert await exchange.fetch_ohlcv(SYMBOL[exchange_id], "1h", LISTED, 5)


@pytest.mark.parametrize("exchange_id", ["binance", "kraken", "coinbase"])
@pytest.mark.parametrize("status", [406, 524])
async def test_ccxt_reads_a_gateway_page_with_a_status_it_does_not_map_as_no_candles(
    simulator: ExchangeSimulator, connect: Connect, exchange_id: str, status: int
) -> None:
    # What the service's plugin must guard against (CCXTExchangeClient raises instead).
    exchange = connect(exchange_id)
    await exchange.load_markets()
    simulator.inject_gateway_faults(status=status, count=1)
    assert await exchange.fetch_ohlcv(SYMBOL[exchange_id], "1h", LISTED, 5) == []


async def test_outage_lasts_until_cleared(simulator: ExchangeSimulator, connect: Connect) -> None:
    exchange = connect("binance")
    await exchange.load_markets()
    simulator.set_outage("binance", 503)
    for _ in range(3):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED, 5)
    simulator.set_outage("binance", None)
    assert await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED, 5)
    assert simulator.candle_requests("binance") == 4


async def test_faults_are_per_exchange(simulator: ExchangeSimulator, connect: Connect) -> None:
    simulator.set_outage("kraken", 500)
    assert sorted(await connect("binance").load_markets()) == MARKETS["binance"]


async def test_delay_slows_replies_past_a_client_timeout(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    simulator.set_delay("binance", 0.5)
    with pytest.raises(ccxt.RequestTimeout):
        await connect("binance", timeout=100).load_markets()


async def test_rate_limit_answers_429_beyond_it(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("binance")
    await exchange.load_markets()
    simulator.rate_limit_per_second = 3
    for _ in range(3):
        await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED, 5)
    with pytest.raises(ccxt.DDoSProtection):
        await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED, 5)
    simulator.reset()
    assert simulator.rate_limit_per_second is None


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_a_request_over_the_rate_limit_is_a_ccxt_network_error(
    simulator: ExchangeSimulator, connect: Connect, exchange_id: str
) -> None:
    """So CCXTExchangeClient retries it (it retries every ccxt NetworkError)."""
    exchange = connect(exchange_id)
    await exchange.load_markets()
    simulator.rate_limit_per_second = 1
    await exchange.fetch_ohlcv(SYMBOL[exchange_id], "1h", LISTED, 5)
    with pytest.raises(ccxt.NetworkError) as caught:
        await exchange.fetch_ohlcv(SYMBOL[exchange_id], "1h", LISTED, 5)
    assert isinstance(caught.value, ccxt.RateLimitExceeded | ccxt.DDoSProtection)
    assert simulator.rejected_requests() == 1


async def test_too_many_rejections_ban_every_request_until_reset(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("binance")
    await exchange.load_markets()
    simulator.rate_limit_per_second = 2
    simulator.ban_after_rejections = 3
    for _ in range(2):
        await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED, 5)
    for _ in range(3):
        with pytest.raises(ccxt.DDoSProtection, match="429"):
            await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED, 5)
    assert (simulator.rejected_requests(), simulator.bans, simulator.banned) == (3, 1, True)
    simulator.rate_limit_per_second = None  # banned all the same, on any endpoint
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED, 5)
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        await exchange.load_markets(reload=True)
    assert (simulator.rejected_requests(), simulator.bans) == (3, 1)
    simulator.reset()
    assert (simulator.rejected_requests(), simulator.bans, simulator.banned) == (0, 0, False)
    assert simulator.ban_after_rejections is None
    assert await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED, 5)


async def test_rejections_without_a_ban_setting_are_only_counted(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("binance")
    await exchange.load_markets()
    simulator.rate_limit_per_second = 1
    await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED, 5)
    for _ in range(5):
        with pytest.raises(ccxt.DDoSProtection):
            await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED, 5)
    assert (simulator.rejected_requests(), simulator.bans, simulator.banned) == (5, 0, False)


@pytest.mark.parametrize(
    ("exchange_id", "raised"),
    [
        ("cryptocom", ccxt.BadRequest),  # code 40003 INVALID_REQUEST
        ("binance", ccxt.BadSymbol),  # -1121 Invalid symbol.
        ("kraken", ccxt.ExchangeError),  # EQuery:Unknown asset pair, which ccxt leaves generic
        ("coinbase", ccxt.ExchangeError),  # 404 NOT_FOUND
    ],
)
async def test_an_unknown_instrument_is_the_exchange_own_error(
    simulator: ExchangeSimulator, connect: Connect, exchange_id: str, raised: type[Exception]
) -> None:
    exchange = connect(exchange_id)
    await exchange.load_markets()
    simulator.set_markets(exchange_id, [])  # delisted after ccxt cached the markets
    with pytest.raises(raised):
        await exchange.fetch_ohlcv(SYMBOL[exchange_id], "1h", LISTED, 5)


def test_truth_is_deterministic_exact_and_closed_only(simulator: ExchangeSimulator) -> None:
    start, end = LISTED - 10 * M5, LISTED + 200 * M5
    candles = simulator.truth("cryptocom", "BTC/USD", "5m", start, end)
    assert candles == simulator.truth("cryptocom", "BTC/USD", "5m", start, end)
    assert candles[0].timestamp == LISTED
    assert candles[-1].timestamp < end
    stamps = {c.timestamp for c in candles}
    quiet = [t for t in range(LISTED, end, M5) if (t // M5) % 97 == 0]
    assert quiet
    assert not stamps & set(quiet)
    assert len(candles) == 200 - len(quiet)
    for c in candles:
        assert c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high
        assert all(float(str(v)) == v and round(v, 2) == v for v in c[1:5])
        assert round(c.volume, 4) == c.volume
    assert candles != simulator.truth("binance", "BTC/USD", "5m", start, end)
    now = LISTED + 100 * M5 + 1
    assert (
        simulator.truth("cryptocom", "BTC/USD", "5m", start, end, now=now)[-1].timestamp + M5 <= now
    )


def test_eth_is_listed_a_month_later(simulator: ExchangeSimulator) -> None:
    feb = 1_706_745_600_000
    assert simulator.truth("binance", "ETH/USDT", "1d", LISTED, feb + 3 * D1)[0].timestamp == feb


@pytest.mark.parametrize("exchange_id", ["cryptocom", "binance", "coinbase"])
@pytest.mark.parametrize("timeframe", ["1m", "5m", "15m", "1h", "1d"])
async def test_every_timeframe_in_the_exchange_notation(
    simulator: ExchangeSimulator, connect: Connect, exchange_id: str, timeframe: str
) -> None:
    exchange = connect(exchange_id)
    since = LISTED + 500 * timeframe_to_ms(timeframe)
    rows = await exchange.fetch_ohlcv(SYMBOL[exchange_id], timeframe, since, 20)
    assert as_candles(rows) == expected(simulator, exchange_id, timeframe, since, 20)


@pytest.mark.parametrize("timeframe", ["5m", "15m", "1h", "1d"])
async def test_kraken_every_timeframe_up_to_now(
    simulator: ExchangeSimulator, connect: Connect, timeframe: str
) -> None:
    exchange = connect("kraken")
    step = timeframe_to_ms(timeframe)
    now = now_ms()
    forming = now - now % step
    since = forming - 30 * step
    rows = as_candles(await exchange.fetch_ohlcv("BTC/USD", timeframe, since))
    assert rows == simulator.truth(
        "kraken", "BTC/USD", timeframe, since, forming + step, now=forming + step
    )


def test_point_ccxt_at_keeps_every_path_and_takes_the_origin() -> None:
    exchange = ccxt.cryptocom()
    before = dict(exchange.urls["api"])
    point_ccxt_at(exchange, "http://127.0.0.1:9")
    after = exchange.urls["api"]
    assert after.keys() == before.keys()
    assert after["v1"] == "http://127.0.0.1:9/exchange/v1"
    assert after["v1"].endswith(before["v1"].split("crypto.com", 1)[1])


async def test_an_unknown_path_is_a_logged_404(
    simulator: ExchangeSimulator, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    exchange = connect("binance")
    with pytest.raises(ccxt.BaseError):
        await exchange.public_get_ticker_price({"symbol": "BTCUSDT"})
    assert "/api/v3/ticker/price" in caplog.text
    assert simulator.candle_requests("binance") == simulator.market_requests("binance") == 0


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_every_nth_admitted_candle_request_answers_empty(
    simulator: ExchangeSimulator, connect: Connect, exchange_id: str
) -> None:
    exchange = connect(exchange_id)
    await exchange.load_markets()
    simulator.answer_empty_every(exchange_id, 3)
    simulator.inject_faults(exchange_id, status=429, count=1)
    with pytest.raises((ccxt.RateLimitExceeded, ccxt.DDoSProtection)):  # not counted
        await exchange.fetch_ohlcv(SYMBOL[exchange_id], "1h", LISTED + 10 * H1, 5)
    answers = [
        await exchange.fetch_ohlcv(SYMBOL[exchange_id], "1h", LISTED + hour * H1, 5)
        for hour in range(10, 16)
    ]
    assert [len(rows) for rows in answers] == [5, 5, 0, 5, 5, 0]
    assert simulator.empty_answers(exchange_id) == 2
    assert simulator.candle_requests(exchange_id) == 7
    # Asked again, an emptied request is answered (the lagging replica caught up).
    again = await exchange.fetch_ohlcv(SYMBOL[exchange_id], "1h", LISTED + 12 * H1, 5)
    assert again == [candle for candle in again if candle[0] >= LISTED + 12 * H1]
    assert len(again) == 5
    simulator.answer_empty_every(exchange_id, None)
    assert await exchange.fetch_ohlcv(SYMBOL[exchange_id], "1h", LISTED + 10 * H1, 5)
    assert simulator.empty_answers(exchange_id) == 2


async def test_empty_answers_count_from_when_they_are_set_and_reset_clears_them(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    exchange = connect("binance")
    await exchange.load_markets()
    await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED, 5)
    simulator.answer_empty_every("binance", 1)
    assert await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED, 5) == []
    assert await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED + H1, 5) == []
    assert await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED, 5)  # asked again: answered
    simulator.answer_empty_every("binance", 2)
    assert await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED + 2 * H1, 5)
    assert await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED + 3 * H1, 5) == []
    assert simulator.empty_answers("binance") == 3
    with pytest.raises(ValueError, match="at least 1"):
        simulator.answer_empty_every("binance", 0)
    simulator.reset()
    assert simulator.empty_answers("binance") == 0
    assert await exchange.fetch_ohlcv("BTC/USDT", "1h", LISTED, 5)


async def test_the_markets_endpoint_is_not_a_candle_request_for_empty_answers(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    simulator.answer_empty_every("cryptocom", 1)
    assert sorted(await connect("cryptocom").load_markets()) == MARKETS["cryptocom"]
    assert simulator.empty_answers("cryptocom") == 0


DELISTED = LISTED + 30 * D1
OTHER = {"cryptocom": "ETH/USD", "binance": "ETH/USDT", "kraken": "ETH/USD", "coinbase": "ETH/USD"}


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_a_delisted_market_is_listed_but_not_active(
    simulator: ExchangeSimulator, connect: Connect, exchange_id: str
) -> None:
    simulator.set_markets(
        exchange_id,
        [
            SimulatedMarket(SYMBOL[exchange_id], LISTED, delisted_at=DELISTED),
            SimulatedMarket(OTHER[exchange_id], LISTED),
        ],
    )
    markets = await connect(exchange_id).load_markets()
    assert sorted(markets) == sorted([SYMBOL[exchange_id], OTHER[exchange_id]])
    assert markets[SYMBOL[exchange_id]]["active"] is False
    assert markets[OTHER[exchange_id]]["active"] is True


@pytest.mark.parametrize("exchange_id", ["cryptocom", "binance", "coinbase"])
async def test_no_candle_opens_at_or_after_the_delisting(
    simulator: ExchangeSimulator, connect: Connect, exchange_id: str
) -> None:
    symbol = SYMBOL[exchange_id]
    simulator.set_markets(exchange_id, [SimulatedMarket(symbol, LISTED, delisted_at=DELISTED)])
    since = DELISTED - 10 * H1
    rows = as_candles(await connect(exchange_id).fetch_ohlcv(symbol, "1h", since, 20))
    truth = simulator.truth(exchange_id, symbol, "1h", since, since + 20 * H1)
    assert rows == truth
    assert truth[-1].timestamp == DELISTED - H1
    assert simulator.truth(exchange_id, symbol, "1h", DELISTED, DELISTED + 100 * H1) == []


async def test_kraken_serves_nothing_after_a_recent_delisting(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    now = now_ms()
    delisted = now - now % H1 - 5 * H1
    simulator.set_markets("kraken", [SimulatedMarket("BTC/USD", LISTED, delisted_at=delisted)])
    rows = await connect("kraken").fetch_ohlcv("BTC/USD", "1h", delisted - 20 * H1)
    assert rows
    assert max(r[0] for r in rows) < delisted


PROBE_END = LISTED + 400 * D1  # 2025-02-04, in the past: a window from the epoch to it


@pytest.mark.parametrize("style", ["latest", "earliest"])
@pytest.mark.parametrize(
    ("exchange_id", "params"),
    [
        ("cryptocom", {"start_ts": 0, "end_ts": PROBE_END}),  # end_ts exclusive
        ("binance", {"until": PROBE_END - 1}),  # endTime inclusive
    ],
)
async def test_a_one_candle_probe_of_decades_answers_the_style_end(
    simulator: ExchangeSimulator,
    connect: Connect,
    exchange_id: str,
    params: dict[str, int],
    style: str,
) -> None:
    simulator.set_window_style(exchange_id, style)  # type: ignore[arg-type]
    rows = await connect(exchange_id).fetch_ohlcv(SYMBOL[exchange_id], "1m", 0, 1, params)
    if style == "latest":
        assert (
            as_candles(rows)
            == simulator.truth(exchange_id, SYMBOL[exchange_id], "1m", PROBE_END - H1, PROBE_END)[
                -1:
            ]
        )
    else:
        assert (
            as_candles(rows)
            == simulator.truth(exchange_id, SYMBOL[exchange_id], "1m", 0, LISTED + H1)[:1]
        )
    assert rows[0][0] == (PROBE_END - 60_000 if style == "latest" else LISTED)


async def test_a_probe_stops_at_the_delisting(
    simulator: ExchangeSimulator, connect: Connect
) -> None:
    simulator.set_markets("cryptocom", [SimulatedMarket("BTC/USD", LISTED, delisted_at=DELISTED)])
    rows = await connect("cryptocom").fetch_ohlcv(
        "BTC/USD", "1m", 0, 1, {"start_ts": 0, "end_ts": now_ms()}
    )
    assert rows[0][0] == DELISTED - 60_000


@pytest.mark.parametrize("style", ["latest", "earliest"])
async def test_coinbase_rejects_a_window_of_more_than_350_candles(
    simulator: ExchangeSimulator, connect: Connect, style: str
) -> None:
    simulator.set_window_style("coinbase", style)  # type: ignore[arg-type]
    exchange = connect("coinbase")
    with pytest.raises(ccxt.BadRequest, match="number of candles requested"):
        await exchange.fetch_ohlcv("BTC/USD", "1m", 0, 1, {"until": PROBE_END})
    since = PROBE_END - 350 * M5
    rows = await exchange.fetch_ohlcv("BTC/USD", "5m", since, 1, {"until": PROBE_END})
    assert as_candles(rows) == simulator.truth("coinbase", "BTC/USD", "5m", since, PROBE_END)[:1]


@pytest.mark.parametrize("style", ["latest", "earliest"])
async def test_kraken_has_no_window_so_a_probe_answers_its_oldest_kept_candle(
    simulator: ExchangeSimulator, connect: Connect, style: str
) -> None:
    simulator.set_window_style("kraken", style)  # type: ignore[arg-type]
    before = now_ms()
    rows = await connect("kraken").fetch_ohlcv("BTC/USD", "1h", 0, 1)
    after = now_ms()
    oldest_kept = [  # the hour may turn during the call
        simulator.truth("kraken", "BTC/USD", "1h", forming - 719 * H1, forming + H1)[:1]
        for forming in (before - before % H1, after - after % H1)
    ]
    assert len(rows) == 1
    assert as_candles(rows) in oldest_kept
