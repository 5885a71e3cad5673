"""Perpetuals, dated futures and their price types over real HTTP, on both storage backends,
through the real ccxt code against the exchange simulator's Binance USDⓈ-M and Crypto.com
wire formats."""

from __future__ import annotations

import httpx
import pytest

from cbtrade.price_types import PRICE_TYPES, PriceType
from tests.exchange_simulator import ExchangeSimulator
from tests.exchange_simulator.core import EXPIRY_240329, LISTED_2024
from tests.fixtures.ohlcv_pages import follow

DAY = 86_400_000
START = LISTED_2024 + 10 * DAY
END = START + 30 * DAY
PERPETUAL = "BTC/USDT:USDT"
SIMULATOR_PRICE = {"trade": "trade", "mark": "mark", "index": "index"}
SIMULATOR_PRICE["premium_index"] = "premiumIndex"


@pytest.mark.parametrize("style", ["earliest", "latest"])
@pytest.mark.parametrize("price", PRICE_TYPES)
def test_30_days_of_each_price_of_a_perpetual_are_exact_and_read_again_for_free(
    http: httpx.Client, simulator: ExchangeSimulator, style: str, price: PriceType
) -> None:
    simulator.set_window_style("binance", style)  # type: ignore[arg-type]
    candles, pages = follow(
        http, exchange="binance", symbol=PERPETUAL, price=price, start=START, end=END, limit=3000
    )
    truth = simulator.truth(
        "binance",
        PERPETUAL,
        "5m",
        START,
        END,
        price=SIMULATOR_PRICE[price],  # type: ignore[arg-type]
    )
    assert candles == truth
    assert len(truth) > 8_000
    assert pages == 3
    calls = simulator.candle_requests("binance")
    again, _ = follow(
        http, exchange="binance", symbol=PERPETUAL, price=price, start=START, end=END, limit=3000
    )
    assert again == candles
    assert simulator.candle_requests("binance") == calls
    # The catalog lists the series with its first candle (fills may run on past END).
    listed = http.get("/api/v1/series", params={"exchange": "binance", "symbol": PERPETUAL})
    assert listed.status_code == 200, listed.text
    [entry] = listed.json()["series"]
    assert (entry["symbol"], entry["price"], entry["timeframe"]) == (PERPETUAL, price, "5m")
    assert entry["first"] == truth[0].timestamp
    assert entry["last"] >= truth[-1].timestamp
    assert entry["candles"] >= len(truth)
    assert entry["not_covered"] == []


def test_each_price_type_is_a_series_of_its_own(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    end = START + DAY
    series, newest = {}, {}
    for price in ("trade", "mark"):
        page = http.get(
            "/api/v1/ohlcv",
            params={"exchange": "binance", "symbol": PERPETUAL, "price": price, "start": START,
                    "end": end},
        )  # fmt: skip
        assert page.status_code == 200, page.text
        body = page.json()
        assert (body["symbol"], body["price"]) == (PERPETUAL, price)
        series[price] = body["candles"]
        latest = http.get(
            "/api/v1/ohlcv/latest",
            params={"exchange": "binance", "symbol": PERPETUAL, "price": price},
        ).json()
        assert latest["price"] == price
        # A fill stores whole exchange calls: a little past the page.
        assert latest["timestamp"] >= series[price][-1]["timestamp"]
        newest[price] = latest["timestamp"]
    assert newest["trade"] == newest["mark"]
    assert series["trade"] != series["mark"]
    assert [c["timestamp"] for c in series["trade"]] == [c["timestamp"] for c in series["mark"]]
    coins = http.get("/api/v1/exchanges/binance/coins").json()["coins"]
    assert coins == [PERPETUAL]


def test_a_crypto_com_perpetual_is_served_like_spot(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    end = START + 3 * DAY
    candles, _ = follow(http, exchange="cryptocom", symbol="BTC/USD:USD", start=START, end=end)
    assert candles == simulator.truth("cryptocom", "BTC/USD:USD", "5m", START, end)


def test_spot_requests_load_only_spot_markets(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    spot = http.get("/api/v1/ohlcv/latest", params={"exchange": "binance", "symbol": "BTC/USDT"})
    assert spot.status_code == 200, spot.text
    assert simulator.market_requests("binance") == 1
    contract = http.get("/api/v1/ohlcv/latest", params={"exchange": "binance", "symbol": PERPETUAL})
    assert contract.status_code == 200, contract.text
    assert simulator.market_requests("binance") == 2  # the USDⓈ-M contracts, once
    http.get("/api/v1/ohlcv/latest", params={"exchange": "binance", "symbol": "ETH/USDT:USDT"})
    http.get("/api/v1/ohlcv/latest", params={"exchange": "binance", "symbol": "ETH/USDT"})
    assert simulator.market_requests("binance") == 2


def test_an_expired_future_serves_its_history_and_asks_nothing_after_expiry(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    future = "BTC/USDT:USDT-240329"
    start, end = EXPIRY_240329 - 5 * DAY, EXPIRY_240329 + 5 * DAY
    candles, _ = follow(http, exchange="binance", symbol=future, start=start, end=end)
    truth = simulator.truth("binance", future, "5m", start, end)
    assert candles == truth
    assert truth[-1].timestamp == EXPIRY_240329 - 300_000
    calls = simulator.candle_requests("binance")
    after, _ = follow(
        http, exchange="binance", symbol=future, start=EXPIRY_240329 + DAY, end=end + 30 * DAY
    )
    assert after == []
    assert simulator.candle_requests("binance") == calls


@pytest.mark.parametrize(
    ("params", "status", "code", "message"),
    [
        ({"exchange": "binance", "symbol": "BTC/USDT", "price": "mark"}, 400, "unsupported_price",
         "BTC/USDT is a spot market"),
        ({"exchange": "cryptocom", "symbol": "BTC/USD:USD", "price": "index"}, 400,
         "unsupported_price", "cryptocom offers no index candles; its price types are trade"),
        ({"exchange": "binance", "symbol": PERPETUAL, "price": "last"}, 400, None, "price"),
        ({"exchange": "binance", "symbol": "BTC/USDT:USDT@mark"}, 400, None, "price="),
        ({"exchange": "binance", "symbol": "DOGE/USDT:USDT", "price": "mark"}, 404,
         "unknown_symbol", "DOGE/USDT:USDT"),
    ],
)  # fmt: skip
def test_unknown_or_unsupported_combinations_are_clear_4xx(
    http: httpx.Client,
    simulator: ExchangeSimulator,
    params: dict[str, str],
    status: int,
    code: str | None,
    message: str,
) -> None:
    response = http.get("/api/v1/ohlcv", params={**params, "start": START, "end": START + DAY})
    assert response.status_code == status, response.text
    error = response.json()
    if code is not None:
        assert error["error"]["code"] == code
    assert message in response.text
    assert simulator.candle_requests(params["exchange"]) == 0


def test_a_price_beside_a_token_must_be_the_tokens(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    first = http.get(
        "/api/v1/ohlcv",
        params={"exchange": "binance", "symbol": PERPETUAL, "price": "mark", "start": START,
                "end": START + DAY, "limit": 100},
    )  # fmt: skip
    assert first.status_code == 200, first.text
    token = first.json()["continuation_token"]
    for beside in ({"price": "trade"}, {"symbol": PERPETUAL}, {"symbol": "ETH/USDT:USDT"}):
        refused = http.get("/api/v1/ohlcv", params={"continuation_token": token, **beside})
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid_continuation_token"
        assert "@" not in error["message"]
    for beside in ({}, {"price": "mark"}, {"symbol": PERPETUAL, "price": "mark"}):
        page = http.get("/api/v1/ohlcv", params={"continuation_token": token, **beside})
        assert page.status_code == 200, page.text
        assert page.json()["price"] == "mark"
