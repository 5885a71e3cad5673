"""GET /api/v1/funding end to end: real HTTP (uvicorn), both storage backends (local disk and
Azurite), real ccxt against the exchange simulator's Binance USDⓈ-M and Crypto.com
perpetuals."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import httpx
import pyarrow.ipc
import pytest

from cbtrade.api import create_app
from cbtrade_client import CandleClient, FundingRate
from tests.exchange_simulator import ExchangeSimulator
from tests.fixtures.http_server import serve_app
from tests.fixtures.service import KEY, service_settings

DAY = 86_400_000
SWITCH = 1_709_251_200_000  # 2024-03-01: Binance's BTC/USDT:USDT goes from 8h to 4h
START, END = SWITCH - 45 * DAY, SWITCH + 45 * DAY


def follow(http: httpx.Client, **params: Any) -> tuple[list[FundingRate], int]:
    """Every funding event of a query over HTTP, following next_link; and the pages."""
    response = http.get("/api/v1/funding", params=params)
    events: list[FundingRate] = []
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        events.extend(FundingRate(**event) for event in body["funding"])
        if body["next_link"] is None:
            assert body["continuation_token"] is None
            assert "link" not in response.headers
            return events, pages
        assert response.headers["x-continuation-token"] == body["continuation_token"]
        response = http.get(body["next_link"])


def truth(simulator: ExchangeSimulator, exchange: str, symbol: str, start: int, end: int) -> list:
    return [
        FundingRate(e.timestamp, e.rate)
        for e in simulator.funding_truth(exchange, symbol, start, end)
    ]


def test_binance_funding_across_an_interval_change_in_pages_and_a_reread_is_free(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    events, pages = follow(
        http, exchange="binance", symbol="BTC/USDT:USDT", start=START, end=END, limit=100
    )
    expected = truth(simulator, "binance", "BTC/USDT:USDT", START, END)
    assert events == expected
    intervals = {b.timestamp - a.timestamp for a, b in pairwise(events)}
    assert intervals == {8 * 3_600_000, 4 * 3_600_000}
    assert pages == -(-len(expected) // 100)
    # One call answers up to 1000 events from the window's start.
    assert simulator.funding_requests("binance") == -(-len(expected) // 1000)
    before = simulator.funding_requests("binance"), simulator.market_requests("binance")
    again, _ = follow(
        http, exchange="binance", symbol="BTC/USDT:USDT", start=START, end=END, limit=100
    )
    assert again == events
    assert (simulator.funding_requests("binance"), simulator.market_requests("binance")) == before


def test_csv_and_arrow_pages_hold_the_same_events(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    params = {"exchange": "binance", "symbol": "BTC/USDT:USDT", "start": START, "end": END}
    expected = truth(simulator, "binance", "BTC/USDT:USDT", START, END)
    csv = http.get("/api/v1/funding", params={**params, "format": "csv"})
    assert csv.status_code == 200, csv.text
    assert csv.headers["content-type"].startswith("text/csv")
    header, *lines = csv.text.strip().split("\n")
    assert header == "timestamp,rate"
    assert [FundingRate(int(t), float(r)) for t, r in (line.split(",") for line in lines)] == (
        expected
    )
    arrow = http.get("/api/v1/funding", params={**params, "format": "arrow"})
    assert arrow.status_code == 200, arrow.text
    table = pyarrow.ipc.open_stream(arrow.content).read_all()
    assert [str(t) for t in table.schema.types] == ["int64", "double"]
    assert table.column_names == ["timestamp", "rate"]
    rows = zip(table["timestamp"].to_pylist(), table["rate"].to_pylist(), strict=True)
    assert [FundingRate(*row) for row in rows] == expected


def test_cryptocom_hourly_funding_equals_the_truth(
    http: httpx.Client, simulator: ExchangeSimulator
) -> None:
    start, end = SWITCH, SWITCH + 20 * DAY  # 480 hourly events: more than one call's 300
    events, _ = follow(http, exchange="cryptocom", symbol="BTC/USD:USD", start=start, end=end)
    expected = truth(simulator, "cryptocom", "BTC/USD:USD", start, end)
    assert events == expected
    assert len(expected) == 480
    assert simulator.funding_requests("cryptocom") == 2
    again, _ = follow(http, exchange="cryptocom", symbol="BTC/USD:USD", start=start, end=end)
    assert again == events
    assert simulator.funding_requests("cryptocom") == 2


def test_cryptocom_funding_is_read_forwards_so_no_page_is_empty_before_the_end(
    simulator: ExchangeSimulator, storage_settings: dict[str, Any]
) -> None:
    # A page budget shorter than a call (each page makes one): Crypto.com fills an over-full
    # answer from its newest event, so a read walking back from the end would serve empty
    # pages until it got back to the cursor.
    settings = service_settings(simulator, page_time_budget_seconds=0.001, **storage_settings)
    start, end = SWITCH, SWITCH + 60 * DAY  # 1,440 hourly events: five calls' worth
    with (
        serve_app(create_app(settings)) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as http,
    ):
        response = http.get(
            "/api/v1/funding",
            params={"exchange": "cryptocom", "symbol": "BTC/USD:USD", "start": start, "end": end},
        )
        sizes, events = [], []
        while True:
            body = response.json()
            sizes.append(len(body["funding"]))
            events += [FundingRate(**event) for event in body["funding"]]
            if body["next_link"] is None:
                break
            response = http.get(body["next_link"])
    assert events == truth(simulator, "cryptocom", "BTC/USD:USD", start, end)
    assert 0 not in sizes
    assert simulator.funding_requests("cryptocom") == 5  # 300 hourly events per call


def test_the_python_client_reads_funding(base_url: str, simulator: ExchangeSimulator) -> None:
    with CandleClient(base_url, api_key=KEY) as client:
        events = client.get_funding("binance", "BTC/USDT:USDT", START, END, limit=150)
    assert events == truth(simulator, "binance", "BTC/USDT:USDT", START, END)


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"exchange": "binance", "symbol": "BTC/USDT"}, 400, "no_funding_history"),
        ({"exchange": "kraken", "symbol": "BTC/USD"}, 400, "no_funding_history"),
        ({"exchange": "binance", "symbol": "NOPE/USDT:USDT"}, 404, "unknown_symbol"),
        ({"exchange": "nope", "symbol": "BTC/USDT:USDT"}, 404, "unknown_exchange"),
        ({"exchange": "binance", "symbol": "BTC/USDT:USDT", "start": None}, 400, "bad_request"),
        ({"exchange": "binance", "symbol": "BTC/USDT:USDT", "end": START}, 400, "bad_request"),
        ({"exchange": "binance", "symbol": "BTC/USDT:USDT", "limit": 0}, 400, None),
        ({"exchange": "binance", "symbol": "BTC/USDT:USDT", "timeframe": "1h"}, 400, None),
        ({"exchange": "binance", "symbol": "BTC/USDT:USDT", "price": "mark"}, 400, None),
        ({"exchange": "binance", "symbol": "BTC/USDT:USDT", "start": 1_704_067_200}, 400, None),
        ({"continuation_token": "forged.token"}, 400, "invalid_continuation_token"),
    ],
)
def test_bad_requests_are_clear_4xx(
    http: httpx.Client,
    simulator: ExchangeSimulator,
    params: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    query = {"start": START, "end": END, **params}
    response = http.get("/api/v1/funding", params={k: v for k, v in query.items() if v is not None})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    assert simulator.funding_requests("binance") == 0


@pytest.mark.parametrize(
    ("issued_by", "params", "used_on"),
    [
        ("/api/v1/ohlcv", {"symbol": "BTC/USDT"}, "/api/v1/funding"),
        ("/api/v1/funding", {"symbol": "BTC/USDT:USDT"}, "/api/v1/ohlcv"),
    ],
)
def test_a_token_serves_only_the_route_that_issued_it(
    http: httpx.Client, issued_by: str, params: dict[str, str], used_on: str
) -> None:
    first = http.get(
        issued_by, params={"exchange": "binance", "start": START, "limit": 1, **params}
    )
    token = first.json()["continuation_token"]
    response = http.get(used_on, params={"continuation_token": token})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_continuation_token"


def test_pages_have_an_etag_a_304_and_head(http: httpx.Client) -> None:
    params = {"exchange": "binance", "symbol": "BTC/USDT:USDT", "start": START, "end": END}
    page = http.get("/api/v1/funding", params=params)
    assert page.headers["cache-control"] == "private, no-cache"
    again = http.get(
        "/api/v1/funding", params=params, headers={"If-None-Match": page.headers["etag"]}
    )
    assert (again.status_code, again.content) == (304, b"")
    head = http.head("/api/v1/funding", params=params)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["etag"] == page.headers["etag"]
