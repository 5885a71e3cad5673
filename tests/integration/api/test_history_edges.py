"""The edges of a history over real HTTP, on Azurite, through ccxt against the simulator:
the years before a listing, transient empty answers, a market that stopped trading, and a
page bounded in wall time, in both of the simulator's window styles."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx
import pytest

from cbtrade.api import create_app
from cbtrade.config import load_settings
from cbtrade.models import Candle
from tests.exchange_simulator import ExchangeSimulator
from tests.exchange_simulator.core import LISTED_2024, SimulatedMarket, WindowStyle
from tests.fixtures.azurite import AzuriteInstance
from tests.fixtures.exchange_simulator import simulator_url_overrides
from tests.fixtures.http_server import serve_app

KEY = "history-edges-key"
M5 = 300_000
DAY = 86_400_000
SEARCH_CALLS = 48
"""The issue's bound on what finding a listing may cost beyond a fill's own calls."""
SYMBOLS = {"cryptocom": "BTC/USD", "binance": "BTC/USDT", "coinbase": "BTC/USD"}

Serve = Callable[..., AbstractContextManager[httpx.Client]]


@pytest.fixture
def serve(simulator: ExchangeSimulator, azurite: AzuriteInstance, azurite_container: str) -> Serve:
    """A service on Azurite with the given settings, and a client for it."""

    @contextmanager
    def start(**settings: Any) -> Iterator[httpx.Client]:
        app = create_app(
            load_settings(
                api_keys=KEY,
                continuation_token_secret="history-edges-token-secret",
                exchange_url_overrides=simulator_url_overrides(simulator),
                exchange_retry_attempts=3,
                exchange_retry_max_wait_seconds=0.05,
                storage_backend="azure",
                azure_connection_string=azurite.connection_string,
                azure_container=azurite_container,
                **settings,
            )
        )
        with (
            serve_app(app) as url,
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120
            ) as client,
        ):
            yield client

    return start


def walk(http: httpx.Client, **params: Any) -> list[list[Candle]]:
    """Every page of a query, following next_link, as lists of candles."""
    response = http.get("/api/v1/ohlcv", params=params)
    pages = []
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([Candle(**candle) for candle in body["candles"]])
        if body["next_link"] is None:
            return pages
        response = http.get(body["next_link"])


def minimum_calls(simulator: ExchangeSimulator, exchange: str, start: int, end: int) -> int:
    return -(-(end - start) // M5 // simulator.max_per_call(exchange))


@pytest.mark.parametrize("style", ["latest", "earliest"])
@pytest.mark.parametrize("exchange", ["cryptocom", "binance", "coinbase"])
def test_a_walk_from_0_starts_at_the_listing_and_costs_a_search_not_years(
    serve: Serve, simulator: ExchangeSimulator, exchange: str, style: WindowStyle
) -> None:
    simulator.set_window_style(exchange, style)
    symbol, end = SYMBOLS[exchange], LISTED_2024 + 10 * DAY
    truth = simulator.truth(exchange, symbol, "5m", 0, end)
    with serve() as http:
        first = http.get(
            "/api/v1/ohlcv",
            params={"exchange": exchange, "symbol": symbol, "start": 0, "limit": 1000, "end": end},
        ).json()
        assert first["candles"][0]["timestamp"] == truth[0].timestamp
        assert len(first["candles"]) == 1000
        assert simulator.candle_requests(exchange) <= SEARCH_CALLS + 4
        pages = walk(http, exchange=exchange, symbol=symbol, start=0, end=end, limit=1000)
        assert [candle for page in pages for candle in page] == truth
        assert all(pages)  # no page comes back empty while candles remain
        calls = simulator.candle_requests(exchange)
        assert calls <= minimum_calls(simulator, exchange, LISTED_2024, end) + SEARCH_CALLS
        # The years before the listing cost nothing now.
        assert walk(http, exchange=exchange, symbol=symbol, start=0, end=LISTED_2024) == [[]]
        before = LISTED_2024 - 3 * 365 * DAY
        assert walk(http, exchange=exchange, symbol=symbol, start=before, end=end)[0][0] == truth[0]
        assert simulator.candle_requests(exchange) == calls


@pytest.mark.parametrize("style", ["latest", "earliest"])
@pytest.mark.parametrize("exchange", ["cryptocom", "binance"])
def test_transient_empty_answers_leave_no_hole(
    serve: Serve, simulator: ExchangeSimulator, exchange: str, style: WindowStyle
) -> None:
    simulator.set_window_style(exchange, style)
    symbol = SYMBOLS[exchange]
    start, end = LISTED_2024 + 5 * DAY, LISTED_2024 + 65 * DAY
    truth = simulator.truth(exchange, symbol, "5m", start, end)
    simulator.answer_empty_every(exchange, 5)
    with serve() as http:
        # The listing is known first (it is what makes a window "inside the series' life").
        walk(http, exchange=exchange, symbol=symbol, start=0, end=LISTED_2024 + DAY)
        pages = walk(http, exchange=exchange, symbol=symbol, start=start, end=end)
        assert [candle for page in pages for candle in page] == truth
        assert simulator.empty_answers(exchange) > 0
        simulator.answer_empty_every(exchange, None)
        calls = simulator.candle_requests(exchange)
        pages = walk(http, exchange=exchange, symbol=symbol, start=start, end=end)
        assert [candle for page in pages for candle in page] == truth
        assert simulator.candle_requests(exchange) == calls


@pytest.mark.parametrize(("exchange", "style"), [("cryptocom", "latest"), ("binance", "earliest")])
def test_a_market_that_stopped_trading_ends_without_a_walk_to_now(
    serve: Serve, simulator: ExchangeSimulator, exchange: str, style: WindowStyle
) -> None:
    symbol, ended = SYMBOLS[exchange], LISTED_2024 + 5 * DAY + 7 * M5
    simulator.set_window_style(exchange, style)
    simulator.set_markets(exchange, [SimulatedMarket(symbol, LISTED_2024, delisted_at=ended)])
    truth = simulator.truth(exchange, symbol, "5m", 0, ended + DAY)
    assert truth[-1].timestamp < ended
    with serve() as http:
        pages = walk(http, exchange=exchange, symbol=symbol, start=LISTED_2024, limit=10_000)
        assert [candle for page in pages for candle in page] == truth
        calls = simulator.candle_requests(exchange)
        assert calls <= minimum_calls(simulator, exchange, LISTED_2024, ended) + SEARCH_CALLS
        assert walk(http, exchange=exchange, symbol=symbol, start=ended) == [[]]
        assert simulator.candle_requests(exchange) == calls


@pytest.mark.parametrize("exchange", ["cryptocom", "binance"])
def test_a_page_stops_at_its_time_budget_and_the_walk_goes_on_exactly(
    serve: Serve, simulator: ExchangeSimulator, exchange: str
) -> None:
    symbol = SYMBOLS[exchange]
    start = LISTED_2024 + DAY
    end = start + 100_000 * M5
    truth = simulator.truth(exchange, symbol, "5m", start, end)
    # 100,000 candles are 100 to 334 calls: at 0.1 s each, 8 at a time, 1.3 to 4.2 s.
    simulator.set_delay(exchange, 0.1)
    with serve(page_time_budget_seconds=1.0) as http:
        first = http.get(
            "/api/v1/ohlcv",
            params={
                "exchange": exchange,
                "symbol": symbol,
                "start": start,
                "end": end,
                "limit": 100_000,
            },
        ).json()
        assert first["continuation_token"] is not None
        assert 0 < len(first["candles"]) < len(truth)
        pages = walk(http, exchange=exchange, symbol=symbol, start=start, end=end, limit=100_000)
        assert [candle for page in pages for candle in page] == truth
        assert simulator.candle_requests(exchange) <= 2 * minimum_calls(
            simulator, exchange, start, end
        )
