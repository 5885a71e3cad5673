"""End to end over real HTTP (plan 4.2, 5.2, 6.4): uvicorn on a free port, the exchange
simulator behind the real ccxt code, and both storage backends (local disk and Azurite)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cbtrade.api import create_app
from cbtrade.models import Candle
from tests.exchange_simulator import ExchangeSimulator
from tests.fixtures.azurite import AzuriteInstanceFactory
from tests.fixtures.http_server import serve_app
from tests.fixtures.ohlcv_pages import follow
from tests.fixtures.service import KEY, service_settings

M5 = 300_000
LISTED = 1_704_067_200_000
START, END = LISTED - 2 * 86_400_000, LISTED + 3 * 86_400_000
DISCOVERY_CALLS = 24
"""At most the calls a search for a listing costs beyond a fill's own (about log2 of the
years searched in one call's spans, plus the checks)."""


@pytest.mark.parametrize(
    ("exchange", "symbol"), [("cryptocom", "BTC/USD"), ("binance", "BTC/USDT")]
)
def test_following_tokens_gives_the_exchanges_truth_and_a_second_read_is_free(
    http: httpx.Client, simulator: ExchangeSimulator, exchange: str, symbol: str
) -> None:
    candles, pages = follow(
        http, exchange=exchange, symbol=symbol.replace("/", "-"), start=START, end=END, limit=700
    )
    assert candles == simulator.truth(exchange, symbol, "5m", START, END)
    assert pages > 1
    slots = (END - LISTED) // M5
    # The range starts two days before the listing: the fetcher finds the first candle with
    # a search (a few probes; see test_listing_discovery.py) instead of fetching those days.
    assert (
        simulator.candle_requests(exchange)
        <= -(-slots // simulator.max_per_call(exchange)) + DISCOVERY_CALLS
    )
    before = simulator.candle_requests(exchange), simulator.market_requests(exchange)
    again, _ = follow(http, exchange=exchange, symbol=symbol, start=START, end=END, limit=700)
    assert again == candles
    assert (simulator.candle_requests(exchange), simulator.market_requests(exchange)) == before


def test_iso_times_and_partial_overlap_fetch_only_the_gap(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    follow(http, exchange="cryptocom", symbol="BTC/USD", start=LISTED, end=LISTED + 600 * M5)
    calls = simulator.candle_requests("cryptocom")
    candles, _ = follow(
        http,
        exchange="cryptocom",
        symbol="BTC_USD",
        start="2024-01-01T00:00:00Z",
        end="2024-01-03T12:00:00Z",
    )
    end = LISTED + int(2.5 * 86_400_000)
    assert candles == simulator.truth("cryptocom", "BTC/USD", "5m", LISTED, end)
    assert simulator.candle_requests("cryptocom") - calls == -(-(720 - 600) // 300)


def test_latest_coins_and_exchanges(http: httpx.Client) -> None:
    latest = http.get("/api/v1/ohlcv/latest", params={"exchange": "cryptocom", "symbol": "BTC/USD"})
    assert latest.json() == {
        "exchange": "cryptocom",
        "symbol": "BTC/USD",
        "price": "trade",
        "timeframe": "5m",
        "timestamp": None,
    }
    follow(http, exchange="cryptocom", symbol="BTC/USD", start=LISTED, end=LISTED + 10 * M5)
    latest = http.get("/api/v1/ohlcv/latest", params={"exchange": "cryptocom", "symbol": "BTC-USD"})
    assert latest.json()["timestamp"] >= LISTED + 9 * M5
    coins = http.get("/api/v1/exchanges/cryptocom/coins").json()
    assert coins == {"exchange": "cryptocom", "coins": ["BTC/USD"]}
    exchanges = http.get("/api/v1/exchanges").json()["exchanges"]
    assert {"cryptocom", "binance", "kraken", "coinbase"} <= set(exchanges)


def test_latest_refuses_an_unlisted_symbol_and_an_unoffered_timeframe(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    def latest(**params: str) -> httpx.Response:
        return http.get("/api/v1/ohlcv/latest", params={"exchange": "cryptocom"} | params)

    unlisted = latest(symbol="NOPE/USD")
    assert unlisted.status_code == 404, unlisted.text
    assert unlisted.json()["error"]["code"] == "unknown_symbol"
    assert "NOPE/USD" in unlisted.json()["error"]["message"]
    for timeframe in ("3m", "1w"):  # cryptocom offers no 3m; the service no 1w
        unoffered = latest(symbol="BTC/USD", timeframe=timeframe)
        assert unoffered.status_code == 400, unoffered.text
        assert unoffered.json()["error"]["code"] == "invalid_timeframe"
    nowhere = http.get("/api/v1/ohlcv/latest", params={"exchange": "nowhere", "symbol": "A/B"})
    assert nowhere.status_code == 404
    assert nowhere.json()["error"]["code"] == "unknown_exchange"
    # Listed, nothing stored: null, as before; the markets were loaded once for all of it.
    assert latest(symbol="BTC/USD").json()["timestamp"] is None
    assert simulator.market_requests("cryptocom") == 1
    assert simulator.candle_requests("cryptocom") == 0


def test_a_timeframe_error_lists_only_timeframes_that_are_then_served(
    simulator: ExchangeSimulator, tmp_path: Path
) -> None:
    symbols = {
        "cryptocom": "BTC/USD", "binance": "BTC/USDT", "kraken": "BTC/USD", "coinbase": "BTC/USD"
    }  # fmt: skip
    now = time.time_ns() // 1_000_000
    end = now - now % 3_600_000
    recent = {"start": end - 2 * 3_600_000, "end": end}  # within Kraken's 720 candles
    settings = service_settings(simulator, local_storage_root=tmp_path / "data")
    with (
        serve_app(create_app(settings)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as client,
    ):
        for exchange, symbol in symbols.items():
            listed: list[list[str]] = []
            # 1s: Binance offers it, the service does not serve it; 90s: no timeframe at all.
            for timeframe in ("1s", "90s"):
                params = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe}
                response = client.get("/api/v1/ohlcv", params=params | recent)
                if response.status_code == 200:
                    continue
                assert response.status_code == 400, response.text
                error = response.json()["error"]
                assert error["code"] == "invalid_timeframe"
                served_natively = error["message"].split("served natively: ")[1].split("; ")[0]
                listed.append(served_natively.split(", "))
            assert listed, exchange
            assert all(offered == listed[0] for offered in listed)
            assert "1s" not in listed[0]
            # The exchange's own calendar timeframes are served natively, on its own grid;
            # Kraken's 15-day interval, which ccxt calls 2w, is not one.
            calendar = {"1w", "2w", "1M", "3d"} & set(listed[0])
            assert calendar == {
                "cryptocom": {"1w", "2w", "1M"}, "binance": {"3d", "1w", "1M"},
                "kraken": {"1w"}, "coinbase": set(),
            }[exchange]  # fmt: skip
            for timeframe in listed[0]:
                params = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe}
                served = client.get("/api/v1/ohlcv", params=params | recent)
                assert served.status_code == 200, (exchange, timeframe, served.text)
                assert "derived_from" not in served.json()


def test_unknown_coin_is_404_without_a_candle_call(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    response = http.get(
        "/api/v1/ohlcv", params={"exchange": "cryptocom", "symbol": "NOPE/USD", "start": LISTED}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_symbol"
    assert simulator.candle_requests("cryptocom") == 0


def test_exchange_down_is_503_and_nothing_is_marked_fetched(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    params = {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "start": LISTED,
        "end": LISTED + 900 * M5,
    }
    simulator.set_outage("binance", 500)
    response = http.get("/api/v1/ohlcv", params=params)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "exchange_unavailable"
    simulator.set_outage("binance", None)
    candles, _ = follow(http, **params)
    assert candles == simulator.truth("binance", "BTC/USDT", "5m", LISTED, LISTED + 900 * M5)


def test_client_gone_mid_pagination_resumes_exactly_from_its_token(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    first = http.get(
        "/api/v1/ohlcv",
        params={
            "exchange": "cryptocom",
            "symbol": "BTC/USD",
            "start": START,
            "end": END,
            "limit": 500,
        },
    ).json()
    # The client goes away; later it (or another instance behind the same secret) resumes.
    resumed, _ = follow(http, continuation_token=first["continuation_token"], limit=500)
    candles = [Candle(**c) for c in first["candles"]] + resumed
    assert candles == simulator.truth("cryptocom", "BTC/USD", "5m", START, END)


def test_following_the_token_alone_keeps_the_first_requests_limit(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    params = {"exchange": "cryptocom", "symbol": "BTC/USD", "start": START, "end": END}
    page = http.get("/api/v1/ohlcv", params=params | {"limit": 200}).raise_for_status().json()
    candles, sizes = [Candle(**c) for c in page["candles"]], [len(page["candles"])]
    while page["continuation_token"] is not None:
        assert "limit" not in page["next_link"]  # the token carries it
        page = (
            http.get("/api/v1/ohlcv", params={"continuation_token": page["continuation_token"]})
            .raise_for_status()
            .json()
        )
        candles.extend(Candle(**c) for c in page["candles"])
        sizes.append(len(page["candles"]))
    assert candles == simulator.truth("cryptocom", "BTC/USD", "5m", START, END)
    # Without the limit each page could hold the default 20,000: all of them at once. (A
    # page cut short by its time budget holds fewer, so more pages, never larger ones.)
    assert max(sizes) <= 200
    assert len(sizes) >= max(3, -(-len(candles) // 200))


def test_recent_range_up_to_now_excludes_the_forming_candle(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    before = time.time_ns() // 1_000_000
    start = before - before % M5 - 50 * M5
    candles, _ = follow(http, exchange="cryptocom", symbol="BTC/USD", start=start)
    after = time.time_ns() // 1_000_000
    # A candle may close while the request runs: the answer is the truth at some instant.
    assert candles in (
        simulator.truth("cryptocom", "BTC/USD", "5m", start, after + M5, now=moment)
        for moment in (before, after)
    )


def test_storage_down_is_503_and_health_says_so(
    simulator: ExchangeSimulator,
    start_azurite: AzuriteInstanceFactory,
    azurite_container: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    private = start_azurite()
    settings = service_settings(
        simulator,
        storage_backend="azure",
        azure_connection_string=private.connection_string,
        azure_container=azurite_container,
    )
    with serve_app(create_app(settings)) as url:
        assert httpx.get(f"{url}/api/health").json() == {"status": "ok", "storage": "ok"}
        private.stop()
        health = httpx.get(f"{url}/api/health", timeout=30)
        assert health.status_code == 503
        assert int(health.headers["retry-after"]) > 0
        assert httpx.head(f"{url}/api/health", timeout=30).status_code == 503
        with caplog.at_level(logging.WARNING, logger="cbtrade"):
            response = httpx.get(
                f"{url}/api/v1/ohlcv",
                params={"exchange": "cryptocom", "symbol": "BTC/USD", "start": LISTED},
                headers={"Authorization": f"Bearer {KEY}", "x-request-id": "storage-down-1"},
                timeout=60,
            )
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["x-request-id"] == "storage-down-1"
    error = response.json()["error"]
    assert error["code"].startswith("storage")
    assert error["request_id"] == "storage-down-1"
    # The store's host and port and the object's key go to the log, not to the caller.
    for internal in ("127.0.0.1", str(private.port), "raw_data", "cryptocom/", azurite_container):
        assert internal not in response.text, internal
    logged = [r.getMessage() for r in caplog.records if "storage-down-1" in r.getMessage()]
    assert len(logged) == 1
    assert f"127.0.0.1:{private.port}" in logged[0] or "raw_data" in logged[0], logged[0]


@pytest.mark.parametrize("page_format", ["csv", "arrow"])
def test_columnar_formats_follow_link_headers_to_the_same_candles(
    http: httpx.Client, simulator: ExchangeSimulator, page_format: str
) -> None:
    import csv
    import io

    import pyarrow as pa

    params: dict[str, Any] = {
        "exchange": "binance", "symbol": "BTC/USDT", "start": START, "end": END,
        "limit": 600, "format": page_format,
    }  # fmt: skip
    response = http.get("/api/v1/ohlcv", params=params)
    candles: list[Candle] = []
    while True:
        assert response.status_code == 200, response.text
        if page_format == "csv":
            rows = list(csv.reader(io.StringIO(response.text)))
            assert rows[0] == ["timestamp", "open", "high", "low", "close", "volume"]
            candles.extend(Candle(int(r[0]), *map(float, r[1:])) for r in rows[1:])
        else:
            table = pa.ipc.open_stream(io.BytesIO(response.content)).read_all()
            candles.extend(Candle(*row.values()) for row in table.to_pylist())
        if "link" not in response.headers:
            break
        next_link = response.headers["link"].split(">")[0].lstrip("<")
        response = http.get(next_link)
    assert candles == simulator.truth("binance", "BTC/USDT", "5m", START, END)


def test_columnar_pages_default_to_the_largest_page(
    simulator: ExchangeSimulator, tmp_path: Path
) -> None:
    import pyarrow as pa

    settings = service_settings(
        simulator, local_storage_root=tmp_path / "data", page_default_limit=100, page_max_limit=500
    )
    params = {"exchange": "binance", "symbol": "BTC/USDT", "start": LISTED, "end": END}
    with (
        serve_app(create_app(settings)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as client,
    ):
        json_page = client.get("/api/v1/ohlcv", params=params).raise_for_status()
        arrow_page = client.get("/api/v1/ohlcv", params=params | {"format": "arrow"})
        csv_page = client.get("/api/v1/ohlcv", params=params | {"format": "csv"})
        assert len(json_page.json()["candles"]) == 100
        assert pa.ipc.open_stream(arrow_page.raise_for_status().content).read_all().num_rows == 500
        assert len(csv_page.raise_for_status().text.splitlines()) == 1 + 500
        assert "limit" not in arrow_page.headers["link"]
