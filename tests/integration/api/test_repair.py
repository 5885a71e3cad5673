"""The operators' repair route over real HTTP: ccxt against the exchange simulator, on both
storage backends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cbtrade.api import create_app
from cbtrade.config import Settings
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.manager import create_storage_manager
from tests.exchange_simulator import ExchangeSimulator
from tests.fixtures.http_server import serve_app
from tests.fixtures.ohlcv_pages import follow
from tests.fixtures.service import service_settings
from tests.integration.api.test_http_end_to_end import LISTED, M5

ADMIN_KEY = "admin-key"
SERIES = {"exchange": "cryptocom", "symbol": "BTC/USD"}
START, END = LISTED, LISTED + 86_400_000
BAD = TimeRange(LISTED + 100 * M5, LISTED + 400 * M5)
"""The window that storage gets wrong: half its candles altered, the rest dropped."""


@pytest.fixture
def settings(simulator: ExchangeSimulator, storage_settings: dict[str, Any]) -> Settings:
    settings: Settings = service_settings(simulator, admin_api_keys=ADMIN_KEY, **storage_settings)
    return settings


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    with serve_app(create_app(settings)) as url:
        yield url


def client(base_url: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=60)


@pytest.fixture
def admin(base_url: str) -> Iterator[httpx.Client]:
    with client(base_url, ADMIN_KEY) as operator:
        yield operator


def corrupt(settings: Settings, truth: list[Candle]) -> list[Candle]:
    """Store wrong candles in BAD (as a bad exchange answer would); what is stored after."""
    inside = [candle for candle in truth if BAD.start <= candle.timestamp < BAD.end]
    wrong = [candle._replace(close=candle.open) for candle in inside[: len(inside) // 2]]

    async def replace() -> None:
        storage = create_storage_manager(settings)
        try:
            await storage.replace_range(
                SERIES["exchange"], SERIES["symbol"], "5m", *BAD, wrong, covered=[BAD]
            )
        finally:
            await storage.close()

    asyncio.run(replace())
    return sorted([c for c in truth if not BAD.start <= c.timestamp < BAD.end] + wrong)


def refresh(http: httpx.Client, **params: Any) -> httpx.Response:
    return http.post("/api/v1/admin/refresh", params=SERIES | params)


def test_refresh_replaces_wrong_stored_candles_with_the_exchanges(
    http: httpx.Client, admin: httpx.Client, settings: Settings, simulator: ExchangeSimulator
) -> None:
    truth = simulator.truth("cryptocom", "BTC/USD", "5m", START, END)
    assert follow(http, **SERIES, start=START, end=END)[0] == truth
    stored = corrupt(settings, truth)
    assert follow(http, **SERIES, start=START, end=END)[0] == stored != truth

    response = refresh(admin, symbol="BTC-USD", start="2024-01-01T00:00:00Z", end=END)
    assert response.status_code == 200, response.text
    assert response.json() == {
        **SERIES,
        "price": "trade",
        "timeframe": "5m",
        "start": START,
        "end": END,
        "candles_before": len(stored),
        "candles_after": len(truth),
    }
    calls = simulator.candle_requests("cryptocom")
    assert follow(http, **SERIES, start=START, end=END)[0] == truth
    assert simulator.candle_requests("cryptocom") == calls  # the repair recorded coverage


def test_an_outage_answers_503_and_leaves_the_stored_candles(
    http: httpx.Client, admin: httpx.Client, settings: Settings, simulator: ExchangeSimulator
) -> None:
    truth = simulator.truth("cryptocom", "BTC/USD", "5m", START, END)
    follow(http, **SERIES, start=START, end=END)
    stored = corrupt(settings, truth)
    simulator.set_outage("cryptocom", 500)
    response = refresh(admin, start=START, end=END)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "exchange_unavailable"
    assert follow(http, **SERIES, start=START, end=END)[0] == stored


def test_only_admins_may_refresh(base_url: str, http: httpx.Client) -> None:
    forbidden = refresh(http, start=START, end=END)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "forbidden"
    assert "CBTRADE_ADMIN_API_KEYS" in forbidden.json()["error"]["message"]
    with client(base_url, None) as anonymous:
        unauthorized = refresh(anonymous, start=START, end=END)
    assert unauthorized.status_code == 401
    assert unauthorized.json()["error"]["code"] == "unauthorized"
    spec = http.get("/api/openapi.json").json()
    assert "403" in spec["paths"]["/api/v1/admin/refresh"]["post"]["responses"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": END, "end": START}, "must be after start"),
        ({"start": START, "end": START}, "must be after start"),
        ({"start": START + 1, "end": START + 2}, "holds no closed 5m candle"),
        ({"start": "yesterday", "end": END}, "start='yesterday'"),
        ({"start": START, "end": START + 100_001 * M5}, "at most 100000"),
        ({"start": START}, "end"),
        ({"start": START, "end": END, "timeframe": "7m"}, "7m"),
    ],
)
def test_bad_ranges_are_400_naming_the_problem(
    admin: httpx.Client, simulator: ExchangeSimulator, params: dict[str, Any], message: str
) -> None:
    response = refresh(admin, **params)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]
    assert simulator.candle_requests("cryptocom") == 0


def test_unknown_symbol_is_404(admin: httpx.Client, simulator: ExchangeSimulator) -> None:
    response = refresh(admin, symbol="NOPE/USD", start=START, end=END)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_symbol"
    assert simulator.candle_requests("cryptocom") == 0
