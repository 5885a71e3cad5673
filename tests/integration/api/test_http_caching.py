"""HTTP caching of candle pages over real HTTP: strong ETags, 304 for If-None-Match, and a
Cache-Control that lets a CDN keep sealed pages, on both storage backends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cbtrade.api import create_app
from cbtrade.config import load_settings
from tests.exchange_simulator import ExchangeSimulator
from tests.fixtures.exchange_simulator import simulator_url_overrides
from tests.fixtures.http_server import serve_app

KEY = "caching-test-key"
JAN_2024 = ("2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z")
SEALED = "public, max-age=86400, immutable"
OPEN = "private, no-cache"


@pytest.fixture
def http(simulator: ExchangeSimulator, storage_settings: dict[str, Any]) -> Iterator[httpx.Client]:
    app = create_app(
        load_settings(
            api_keys=KEY,
            continuation_token_secret="caching-test-token-secret",
            exchange_url_overrides=simulator_url_overrides(simulator),
            **storage_settings,
        )
    )
    with (
        serve_app(app) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
        ) as client,
    ):
        yield client


def ohlcv(
    http: httpx.Client,
    start: str | int,
    end: str | int,
    *,
    if_none_match: str | None = None,
    **params: Any,
) -> httpx.Response:
    query = {"exchange": "cryptocom", "symbol": "BTC/USD", "start": start, "end": end, **params}
    headers = {} if if_none_match is None else {"If-None-Match": if_none_match}
    return http.get("/api/v1/ohlcv", params=query, headers=headers)


def test_a_sealed_page_is_immutable_and_answers_304(http: httpx.Client) -> None:
    filled = ohlcv(http, *JAN_2024, limit=100_000)
    assert filled.status_code == 200
    assert filled.headers["cache-control"] == OPEN  # this page fetched from the exchange

    # The month is stored whole and long closed: its objects are sealed.
    again = ohlcv(http, *JAN_2024, limit=100_000)
    assert again.status_code == 200
    assert again.content == filled.content
    assert again.headers["cache-control"] == SEALED
    assert again.headers["vary"] == "Authorization"
    etag = again.headers["etag"]
    assert etag.startswith('"')

    day = ohlcv(http, "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z")
    assert day.headers["cache-control"] == SEALED
    assert day.headers["etag"] != etag

    for validator in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        unchanged = ohlcv(http, *JAN_2024, limit=100_000, if_none_match=validator)
        assert unchanged.status_code == 304, validator
        assert unchanged.content == b""
        assert unchanged.headers["etag"] == etag
        assert unchanged.headers["cache-control"] == SEALED
    changed = ohlcv(http, *JAN_2024, limit=100_000, if_none_match='"not-this-page"')
    assert changed.status_code == 200
    assert changed.content == filled.content


@pytest.mark.parametrize("page_format", ["csv", "arrow"])
def test_every_format_has_its_own_etag(http: httpx.Client, page_format: str) -> None:
    ohlcv(http, *JAN_2024, limit=100_000)
    as_json = ohlcv(http, *JAN_2024, limit=100_000)
    other = ohlcv(http, *JAN_2024, limit=100_000, format=page_format)
    assert other.headers["cache-control"] == SEALED
    assert other.headers["etag"] != as_json.headers["etag"]


def test_the_open_head_of_a_series_is_revalidated(http: httpx.Client) -> None:
    now = time.time_ns() // 1_000_000
    start, end = now - 3 * 3_600_000, now - now % 300_000
    first = ohlcv(http, start, end)
    second = ohlcv(http, start, end)
    assert second.headers["cache-control"] == OPEN
    assert second.headers["etag"] == first.headers["etag"]
    not_modified = ohlcv(http, start, end, if_none_match=second.headers["etag"])
    assert not_modified.status_code == 304
    assert not_modified.headers["cache-control"] == OPEN


def test_answers_that_change_are_never_kept_by_a_cache(http: httpx.Client) -> None:
    for path in (
        "/api/v1/ohlcv/latest?exchange=cryptocom&symbol=BTC/USD",
        "/api/v1/exchanges",
        "/api/v1/ohlcv?exchange=nosuch&symbol=BTC/USD&start=0",  # an error
        "/api/health",
    ):
        assert http.get(path).headers["cache-control"] == "no-store", path
