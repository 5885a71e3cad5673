"""CCXTExchangeClient on its own: windows, translation, errors and retries, with a fake
ccxt exchange object (the real ccxt code is tested against the simulator in
tests/integration/exchange_source)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import ccxt.async_support as ccxt_async
import pytest

from cbtrade.errors import (
    ExchangeError,
    ExchangeHistoryUnavailableError,
    ExchangeUnavailableError,
    InvalidInputError,
    InvalidTimeframeError,
    UnknownSymbolError,
    UnsupportedPriceTypeError,
)
from cbtrade.exchange_source.plugins.ccxt_exchange import (
    PROFILES,
    CCXTExchangeClient,
    _json_answers_only,
    rewrite_origin,
)
from cbtrade.models import Candle

M5 = 300_000
T0 = 1_704_067_200_000
NOW = T0 + 10_000 * M5 + 1_000


class FakeCcxtExchange:
    """Answers fetch_ohlcv with a candle for every slot of its window, forming one included."""

    def __init__(self) -> None:
        self.markets = {"BTC/USD": {}}
        self.timeframes = {"1m": "1m", "5m": "5m"}
        self.calls: list[tuple[str, str, int, int, dict[str, Any]]] = []
        self.failures: list[Exception] = []
        self.closed = False

    async def load_markets(self) -> dict[str, Any]:
        return self.markets

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int, limit: int, params: dict[str, Any]
    ) -> list[list[Any]]:
        self.calls.append((symbol, timeframe, since, limit, params))
        if self.failures:
            raise self.failures.pop(0)
        end = params.get("until", params.get("end_ts", since + limit * M5 - 1)) + 1
        start = params.get("start_ts", since)
        return [[t, "1.5", 2, 1, 1.25, None] for t in range(start, min(end, NOW + M5), M5)]

    async def close(self) -> None:
        self.closed = True


def client_for(exchange_id: str, fake: FakeCcxtExchange, **options: Any) -> CCXTExchangeClient:
    client = CCXTExchangeClient(
        exchange_id, clock=lambda: NOW, retry_max_wait_seconds=0.01, **options
    )
    client._exchange = fake
    return client


def test_get_exchange_name_and_per_call_maxima() -> None:
    assert CCXTExchangeClient("cryptocom").get_exchange_name() == "cryptocom"
    assert CCXTExchangeClient("cryptocom").get_max_candles_per_call("5m") == 300
    assert CCXTExchangeClient("binance").get_max_candles_per_call("5m") == 1000
    assert CCXTExchangeClient("kraken").get_max_candles_per_call("5m") == 720


def test_rewrite_origin_keeps_paths_in_nested_urls() -> None:
    urls = {
        "v1": {"public": "https://api.crypto.com/exchange/v1/public"},
        "list": ["https://a.example.com/x?y=1"],
        "n": 3,
    }
    assert rewrite_origin(urls, "http://127.0.0.1:9000") == {
        "v1": {"public": "http://127.0.0.1:9000/exchange/v1/public"},
        "list": ["http://127.0.0.1:9000/x?y=1"],
        "n": 3,
    }


async def test_url_override_is_applied_to_the_real_ccxt_object() -> None:
    client = CCXTExchangeClient("binance", url_override="http://127.0.0.1:9")
    exchange = client._create_exchange()
    try:
        assert exchange.urls["api"]["public"] == "http://127.0.0.1:9/api/v3"
        assert exchange.options["fetchMarkets"]["types"] == ["spot"]
    finally:
        await exchange.close()


async def test_windows_are_exact_and_minimal_and_translation_is_typed() -> None:
    fake = FakeCcxtExchange()
    client = client_for("binance", fake)
    candles = await client.fetch_historical_data("BTC/USD", "5m", T0, T0 + 2_500 * M5)
    assert [c.timestamp for c in candles] == list(range(T0, T0 + 2_500 * M5, M5))
    assert candles[0] == Candle(T0, 1.5, 2.0, 1.0, 1.25, 0.0)
    assert all(isinstance(v, float) for v in candles[0][1:])
    assert [(since, limit, params) for _, _, since, limit, params in fake.calls] == [
        (T0, 1000, {"until": T0 + 1000 * M5 - 1}),
        (T0 + 1000 * M5, 1000, {"until": T0 + 2000 * M5 - 1}),
        (T0 + 2000 * M5, 500, {"until": T0 + 2500 * M5 - 1}),
    ]


async def test_cryptocom_passes_its_own_window() -> None:
    fake = FakeCcxtExchange()
    await client_for("cryptocom", fake).fetch_historical_data("BTC/USD", "5m", T0, T0 + 10 * M5)
    assert fake.calls[0][4] == {"start_ts": T0, "end_ts": T0 + 10 * M5 - 1}


async def test_forming_candle_is_dropped() -> None:
    fake = FakeCcxtExchange()
    horizon = NOW - NOW % M5
    candles = await client_for("binance", fake).fetch_historical_data(
        "BTC/USD", "5m", horizon - 3 * M5, horizon + 5 * M5
    )
    assert [c.timestamp for c in candles] == [horizon - 3 * M5, horizon - 2 * M5, horizon - M5]


@pytest.mark.parametrize(
    ("symbol", "timeframe", "start", "end", "error"),
    [
        ("NOPE/USD", "5m", T0, T0 + M5, UnknownSymbolError),
        ("BTC/USD", "1d", T0, T0 + 86_400_000, InvalidTimeframeError),
        ("BTC/USD", "5m", T0 + 1, T0 + M5, InvalidInputError),
        ("BTC/USD", "5m", T0 + M5, T0, InvalidInputError),
    ],
)
async def test_bad_requests_fail_without_a_candle_call(
    symbol: str, timeframe: str, start: int, end: int, error: type[Exception]
) -> None:
    fake = FakeCcxtExchange()
    with pytest.raises(error):
        await client_for("binance", fake).fetch_historical_data(symbol, timeframe, start, end)
    assert fake.calls == []


async def test_kraken_reports_the_depth_it_cannot_serve() -> None:
    fake = FakeCcxtExchange()
    client = client_for("kraken", fake, profile=PROFILES["kraken"])
    horizon = NOW - NOW % M5
    with pytest.raises(ExchangeHistoryUnavailableError) as caught:
        await client.fetch_historical_data("BTC/USD", "5m", horizon - 800 * M5, horizon)
    assert caught.value.earliest_available == horizon - 719 * M5
    assert fake.calls == []
    recent = await client.fetch_historical_data("BTC/USD", "5m", horizon - 700 * M5, horizon)
    assert len(recent) == 700
    assert len(fake.calls) == 1


async def test_transient_faults_are_retried_then_succeed() -> None:
    fake = FakeCcxtExchange()
    fake.failures = [ccxt_async.RateLimitExceeded("429"), ccxt_async.ExchangeNotAvailable("500")]
    candles = await client_for("binance", fake).fetch_historical_data("BTC/USD", "5m", T0, T0 + M5)
    assert len(candles) == 1
    assert len(fake.calls) == 3


async def test_persistent_faults_end_in_exchange_unavailable() -> None:
    fake = FakeCcxtExchange()
    fake.failures = [ccxt_async.NetworkError("down")] * 10
    client = client_for("binance", fake, retry_attempts=3)
    with pytest.raises(ExchangeUnavailableError, match="3 times"):
        await client.fetch_historical_data("BTC/USD", "5m", T0, T0 + M5)
    assert len(fake.calls) == 3


@pytest.mark.parametrize(
    ("raised", "mapped"),
    [
        (ccxt_async.BadSymbol("no such market"), UnknownSymbolError),
        (ccxt_async.BadRequest("bad"), InvalidInputError),
        (ccxt_async.ExchangeError("weird"), ExchangeError),
    ],
)
async def test_permanent_errors_are_mapped_without_retry(
    raised: Exception, mapped: type[Exception]
) -> None:
    fake = FakeCcxtExchange()
    fake.failures = [raised]
    with pytest.raises(mapped):
        await client_for("binance", fake).fetch_historical_data("BTC/USD", "5m", T0, T0 + M5)
    assert len(fake.calls) == 1


@pytest.mark.parametrize(
    ("raised", "mapped"),
    [
        (
            ccxt_async.BadSymbol("binance GET https://10.0.0.7:8443/api/v3/klines?x=1 400"),
            UnknownSymbolError,
        ),
        (
            ccxt_async.BadRequest("binance GET http://127.0.0.1:9000/api/v3/klines 400 {}"),
            InvalidInputError,
        ),
    ],
)
async def test_errors_the_caller_reads_name_no_exchange_url(
    raised: Exception, mapped: type[Exception]
) -> None:
    fake = FakeCcxtExchange()
    fake.failures = [raised]
    with pytest.raises(mapped) as caught:
        await client_for("binance", fake).fetch_historical_data("BTC/USD", "5m", T0, T0 + M5)
    assert "://" not in str(caught.value)
    assert "<exchange API>" in str(caught.value)


async def test_timeframe_errors_list_only_what_the_service_serves_for_the_exchange() -> None:
    fake = FakeCcxtExchange()
    fake.timeframes = {"1m": "1", "3d": "3D", "5m": "5", "1w": "1W", "2w": "2W", "1M": "1M"}
    client = client_for("binance", fake)
    for timeframe in ("1w", "3d", "15m", "2w"):
        with pytest.raises(InvalidTimeframeError) as caught:
            await client.fetch_historical_data("BTC/USD", timeframe, T0, T0 + 86_400_000 * 14)
        assert str(caught.value) == (
            f"binance does not offer {timeframe!r} candles through this service; it offers 1m, 5m"
            if timeframe in ("15m", "2w")  # binance's profile declares no 2w
            else f"binance's own {timeframe!r} candles (and derived timeframes) are served by "
            "GET /api/v1/ohlcv only; here it offers 1m, 5m"
        )
        with pytest.raises(InvalidTimeframeError, match=r"it offers 1m, 5m$"):
            await client.check_series("BTC/USD", timeframe)
    with pytest.raises(InvalidTimeframeError, match=r"it offers 1m, 5m$"):
        client.check_timeframe("1M")
    assert client.check_timeframe("15m") == 15 * 60_000  # the markets will say it is not offered
    assert fake.calls == []


async def test_availability_and_close() -> None:
    fake = FakeCcxtExchange()
    client = client_for("binance", fake)
    assert await client.check_coin_availability("BTC/USD") is True
    assert await client.check_coin_availability("ETH/USD") is False
    await client.close()
    assert fake.closed


def test_calls_in_flight_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="calls_in_flight"):
        CCXTExchangeClient("binance", calls_in_flight=0)


async def test_concurrent_ranges_share_the_in_flight_limit_first_come_first_served() -> None:
    class SlowFake(FakeCcxtExchange):
        def __init__(self) -> None:
            super().__init__()
            self.in_flight = 0
            self.most_in_flight = 0

        async def fetch_ohlcv(
            self, symbol: str, timeframe: str, since: int, limit: int, params: dict[str, Any]
        ) -> list[list[Any]]:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            await asyncio.sleep(0.001)
            self.in_flight -= 1
            return await super().fetch_ohlcv(symbol, timeframe, since, limit, params)

    fake = SlowFake()
    client = client_for("binance", fake, calls_in_flight=4)
    first = (T0, T0 + 6_000 * M5)
    second = (T0 + 6_000 * M5, T0 + 9_000 * M5)
    await asyncio.gather(
        client.fetch_historical_data("BTC/USD", "5m", *first),
        client.fetch_historical_data("BTC/USD", "5m", *second),
    )
    assert fake.most_in_flight == 4
    # Every window of the range asked first was called before any of the second range.
    assert [since for _, _, since, _, _ in fake.calls] == list(range(T0, second[1], 1_000 * M5))


async def test_long_lived_objects_are_frozen_once_markets_are_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen: list[bool] = []
    monkeypatch.setattr(gc, "collect", lambda *args: 0)
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    client = client_for("binance", FakeCcxtExchange())
    await client.fetch_historical_data("BTC/USD", "5m", T0, T0 + M5)
    await client.fetch_historical_data("BTC/USD", "5m", T0, T0 + M5)
    assert frozen == [True]


@pytest.mark.parametrize(
    ("status", "response", "reaches_the_exchanges_hook"),
    [
        (503, {"code": 50001, "message": "ERR_INTERNAL"}, True),  # Crypto.com's envelope
        (503, {"message": "Internal server error"}, False),  # a JSON gateway body
        (502, None, False),  # an HTML page
        (400, {"code": 40003, "message": "BAD_REQUEST"}, True),
    ],
)
def test_crypto_com_errors_without_its_envelope_go_by_status(
    status: int, response: Any, reaches_the_exchanges_hook: bool
) -> None:
    seen: list[int] = []

    class Exchange:
        id = "cryptocom"

        def handle_errors(self, code: int, *rest: Any) -> None:
            seen.append(code)

    hook = _json_answers_only(Exchange(), envelope_by_status=True)
    hook(status, "reason", "https://x/y", "GET", {}, "body", response, {}, None)
    assert seen == ([status] if reaches_the_exchanges_hook else [])


@pytest.mark.parametrize("body", ["", "<html>portal</html>", "42"])
def test_a_successful_answer_that_is_not_a_json_object_or_array_is_refused(body: str) -> None:
    class Exchange:
        id = "binance"

        def handle_errors(self, *args: Any) -> None:
            raise AssertionError("not reached")

    hook = _json_answers_only(Exchange(), envelope_by_status=False)
    with pytest.raises(ccxt_async.ExchangeNotAvailable, match="not a JSON answer"):
        hook(200, "OK", "https://x/y", "GET", {}, body, None, {}, None)


class FakeContractExchange(FakeCcxtExchange):
    """A fake whose markets are those of the types its options name, like ccxt's binance
    with ``fetchMarkets.types``."""

    EXPIRY = T0 + 100 * M5 + 60_000  # inside the candle of T0 + 100 * M5

    def __init__(self, *, has: dict[str, bool] | None = None) -> None:
        super().__init__()
        self.options: dict[str, Any] = {"fetchMarkets": {"types": ["spot"]}}
        self.has = has or {"fetchMarkOHLCV": True, "fetchIndexOHLCV": True}
        self.loads: list[list[str]] = []
        self.markets = {}
        self.fail_loads = 0

    async def fetch_markets(self) -> list[dict[str, Any]]:
        types = list(self.options["fetchMarkets"]["types"])
        self.loads.append(types)
        if self.fail_loads:
            self.fail_loads -= 1
            raise ccxt_async.ExchangeError("futures API down")
        markets = []
        if "spot" in types:
            markets.append({"symbol": "BTC/USD", "contract": False})
        if "linear" in types:
            markets.append({"symbol": "BTC/USD:USD", "contract": True})
            markets.append(
                {"symbol": "BTC/USD:USD-240101", "contract": True, "expiry": self.EXPIRY}
            )
        return markets

    async def load_markets(self) -> dict[str, Any]:
        self.set_markets(await self.fetch_markets())
        return self.markets

    def set_markets(self, markets: list[dict[str, Any]]) -> None:
        self.markets = {market["symbol"]: market for market in markets}


async def test_contracts_load_once_when_a_request_first_names_one() -> None:
    fake = FakeContractExchange()
    client = client_for("binance", fake)
    assert await client.check_coin_availability("BTC/USD")
    assert fake.loads == [["spot"]]
    assert await client.check_coin_availability("BTC/USD:USD@mark")
    assert await client.check_coin_availability("BTC/USD:USD")
    assert await client.check_coin_availability("BTC/USD")
    assert not await client.check_coin_availability("ETH/USD:USD")
    assert fake.loads == [["spot"], ["linear"]]
    assert fake.options["fetchMarkets"] == {"types": ["spot"]}
    assert PROFILES["binance"].options["fetchMarkets"] == {"types": ["spot"]}


async def test_a_failed_contract_load_leaves_spot_markets_served_and_is_tried_again() -> None:
    fake = FakeContractExchange()
    fake.fail_loads = 0
    client = client_for("binance", fake, retry_attempts=1)
    assert await client.check_coin_availability("BTC/USD")
    fake.fail_loads = 1
    with pytest.raises(ExchangeError, match="futures API down"):
        await client.check_coin_availability("BTC/USD:USD")
    assert fake.options["fetchMarkets"] == {"types": ["spot"]}
    assert await client.check_coin_trading("BTC/USD")
    assert await client.check_coin_trading("BTC/USD:USD")
    assert fake.loads == [["spot"], ["linear"], ["linear"]]


async def test_requests_for_loaded_markets_do_not_wait_for_a_contract_load() -> None:
    fake = FakeContractExchange()
    client = client_for("binance", fake)
    assert await client.check_coin_availability("BTC/USD")
    release = asyncio.Event()
    fetch_markets = fake.fetch_markets

    async def slow_fetch_markets() -> list[dict[str, Any]]:
        await release.wait()
        return await fetch_markets()

    fake.fetch_markets = slow_fetch_markets  # type: ignore[method-assign]
    contract = asyncio.ensure_future(client.check_coin_availability("BTC/USD:USD"))
    await asyncio.sleep(0)
    assert not contract.done()
    assert await client.check_coin_trading("BTC/USD")  # not behind the contract load
    release.set()
    assert await contract


async def test_price_types_pass_ccxts_price_option_for_the_market() -> None:
    fake = FakeContractExchange()
    client = client_for("binance", fake)
    candles = await client.fetch_historical_data("BTC/USD:USD@index", "5m", T0, T0 + 2 * M5)
    assert len(candles) == 2
    assert [(call[0], call[4]) for call in fake.calls] == [
        ("BTC/USD:USD", {"until": T0 + 2 * M5 - 1, "price": "index"})
    ]


@pytest.mark.parametrize(
    ("symbol", "message"),
    [
        ("BTC/USD@mark", "BTC/USD is a spot market: only its trade candles exist"),
        ("BTC/USD:USD@premium_index", "its price types are trade, mark, index"),
    ],
)
async def test_price_types_a_market_lacks_are_refused_without_a_call(
    symbol: str, message: str
) -> None:
    fake = FakeContractExchange()
    with pytest.raises(UnsupportedPriceTypeError, match=message):
        await client_for("binance", fake).fetch_historical_data(symbol, "5m", T0, T0 + M5)
    assert fake.calls == []


async def test_an_expired_future_is_asked_nothing_after_its_expiry() -> None:
    fake = FakeContractExchange()
    client = client_for("binance", fake)
    future = "BTC/USD:USD-240101"
    after = await client.fetch_historical_data(future, "5m", T0 + 200 * M5, T0 + 300 * M5)
    assert after == []
    assert fake.calls == []
    candles = await client.fetch_historical_data(future, "5m", T0 + 50 * M5, T0 + 300 * M5)
    assert [c.timestamp for c in candles] == list(range(T0 + 50 * M5, T0 + 101 * M5, M5))
    assert [call[4] for call in fake.calls] == [{"until": T0 + 101 * M5 - 1}]
    assert not await client.check_coin_trading(future)
    assert await client.check_coin_trading("BTC/USD:USD")


@pytest.mark.parametrize(
    ("exchange_id", "offered"),
    [
        ("binance", ["1m", "3d", "1w", "1M", "1s"]),
        ("kraken", ["1m", "1w", "1s"]),  # its "2w" is a 15-day interval
        ("bitstamp", ["1m", "1s"]),  # its "1w" is a 3-day interval
    ],
)
def test_only_the_calendar_timeframes_a_profile_declares_are_offered(
    exchange_id: str, offered: list[str]
) -> None:
    fake = FakeCcxtExchange()
    fake.timeframes = {name: name for name in ("1m", "3d", "1w", "2w", "1M", "1s")}
    assert client_for(exchange_id, fake).offered_timeframes() == offered


class WeeklyExchange(FakeCcxtExchange):
    """Answers weekly candles opening every ``spacing`` ms from ``first`` through its window's
    end (inclusive), whatever the limit asked."""

    def __init__(self, first: int, spacing: int) -> None:
        super().__init__()
        self.timeframes = {"1m": "1m", "1w": "1w"}
        self.first, self.spacing = first, spacing

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int, limit: int, params: dict[str, Any]
    ) -> list[list[Any]]:
        self.calls.append((symbol, timeframe, since, limit, params))
        last = params["until"]
        return [[t, 1, 2, 0.5, 1.5, 3] for t in range(self.first, last + 1, self.spacing)]


async def test_a_calendar_window_has_a_slot_to_spare_and_refuses_an_overfull_answer() -> None:
    week = 7 * 86_400_000
    start = NOW - 30 * week + 86_400_000  # a day into a week
    # The exchange answers the week holding start too: one more than the window's opens.
    held = WeeklyExchange(start - 86_400_000, week)
    window = await client_for("binance", held).fetch_calendar_window(
        "BTC/USD", "1w", start, start + 3 * week
    )
    assert [c.timestamp for c in window.candles] == [
        start + 6 * 86_400_000 + k * week for k in range(3)
    ]
    assert window.covered == (start, start + 3 * week)
    assert held.calls[0][3] == 5  # the window's three opens and two to spare
    # Opens a day apart cannot be weekly candles: the answer may be cut, so nothing is kept.
    daily = WeeklyExchange(start, 86_400_000)
    with pytest.raises(ExchangeError, match="holds at most 3"):
        await client_for("binance", daily).fetch_calendar_window(
            "BTC/USD", "1w", start, start + 3 * week
        )
