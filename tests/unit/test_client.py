"""CandleClient and AsyncCandleClient against a mock transport serving DESIGN.md pages."""

from __future__ import annotations

import asyncio
import gc
import threading
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from cbtrade.client import (
    _GC_PAUSE,
    AsyncCandleClient,
    CandleClient,
    CbTradeClientError,
    CbTradeConnectionError,
    _json_page,
)
from cbtrade.models import Candle

PAGES = {
    None: ([Candle(0, 1.0, 2.0, 0.5, 1.5, 10.0), Candle(300_000, 1.5, 2.5, 1.0, 2.0, 11.0)], "t1"),
    "t1": ([Candle(600_000, 2.0, 3.0, 1.5, 2.5, 12.0)], None),
}


class PagedService:
    """Answers /api/v1/ohlcv page by page; records every request; can fail first."""

    def __init__(self, failures: list[int] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.failures = list(failures or [])

    @staticmethod
    def link(token: str, request: httpx.Request) -> str:
        """The next link as the service builds it: the token, and the limit if one was given."""
        limit = request.url.params.get("limit")
        return f"/api/v1/ohlcv?continuation_token={token}" + (f"&limit={limit}" if limit else "")

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failures:
            status = self.failures.pop(0)
            return httpx.Response(
                status, json={"error": {"code": f"code_{status}", "message": "nope"}}
            )
        token = request.url.params.get("continuation_token")
        candles, next_token = PAGES[token]
        next_link = next_token and self.link(next_token, request)
        return httpx.Response(
            200,
            json={
                "exchange": "cryptocom",
                "symbol": "BTC/USD",
                "timeframe": "5m",
                "candles": [c._asdict() for c in candles],
                "continuation_token": next_token,
                "next_link": next_link,
            },
            headers={"Link": f'<{next_link}>; rel="next"'} if next_link else {},
        )


ALL = PAGES[None][0] + PAGES["t1"][0]


def sync_client(service: Any, **options: Any) -> CandleClient:
    options = {"api_key": "k", "retry_backoff": 0, **options}
    return CandleClient("http://service", transport=httpx.MockTransport(service), **options)


def async_client(service: Any, **options: Any) -> AsyncCandleClient:
    options = {"retry_backoff": 0, **options}
    return AsyncCandleClient("http://service", transport=httpx.MockTransport(service), **options)


def test_pages_are_followed_with_the_token() -> None:
    service = PagedService()
    with sync_client(service) as client:
        start = datetime(1970, 1, 1, tzinfo=UTC)
        assert client.get_candles("cryptocom", "BTC/USD", start=start, end=900_000, limit=2) == ALL
    first, second = service.requests
    assert first.headers["authorization"] == "Bearer k"
    assert dict(first.url.params) == {
        "exchange": "cryptocom",
        "symbol": "BTC/USD",
        "timeframe": "5m",
        "start": "0",
        "end": "900000",
        "limit": "2",
    }
    assert dict(second.url.params) == {"continuation_token": "t1", "limit": "2"}


async def test_async_client_follows_pages_too() -> None:
    service = PagedService()
    async with async_client(service) as client:
        assert await client.get_candles("cryptocom", "BTC/USD", start=0) == ALL
    assert "authorization" not in service.requests[0].headers
    assert service.requests[1].url.params["continuation_token"] == "t1"


def test_errors_are_typed_and_4xx_is_not_retried() -> None:
    service = PagedService(failures=[404])
    with sync_client(service) as client, pytest.raises(CbTradeClientError) as caught:
        client.get_candles("cryptocom", "NOPE/USD", start=0)
    assert (caught.value.status_code, caught.value.code) == (404, "code_404")
    assert len(service.requests) == 1


def test_transient_errors_are_retried_a_bounded_number_of_times() -> None:
    recovering = PagedService(failures=[503, 502])
    with sync_client(recovering, retries=2) as client:
        assert client.get_candles("cryptocom", "BTC/USD", start=0) == ALL
    down = PagedService(failures=[503] * 10)
    with sync_client(down, retries=2) as client, pytest.raises(CbTradeClientError):
        client.get_candles("cryptocom", "BTC/USD", start=0)
    assert len(down.requests) == 3


async def test_async_client_maps_errors_and_bounds_retries() -> None:
    down = PagedService(failures=[504] * 10)
    async with async_client(down, retries=1) as client:
        with pytest.raises(CbTradeClientError) as caught:
            await client.get_candles("cryptocom", "BTC/USD", start=0)
    assert (caught.value.status_code, caught.value.code) == (504, "code_504")
    assert len(down.requests) == 2


def test_error_without_a_json_body_is_still_typed() -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text="<html>Unauthorized</html>")

    with sync_client(gateway) as client, pytest.raises(CbTradeClientError) as caught:
        client.list_exchanges()
    assert (caught.value.status_code, caught.value.code) == (401, "http_error")
    assert "Unauthorized" in caught.value.message


def unreachable_then(service: PagedService, failures: int) -> Any:
    """A transport that cannot connect ``failures`` times, then passes to ``service``."""
    attempts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) <= failures:
            raise httpx.ConnectError("connection refused", request=request)
        return service(request)

    handler.attempts = attempts  # type: ignore[attr-defined]
    return handler


def test_connection_errors_are_retried_then_typed() -> None:
    flaky = unreachable_then(PagedService(), failures=2)
    with sync_client(flaky, retries=2) as client:
        assert client.get_candles("cryptocom", "BTC/USD", start=0) == ALL
    down = unreachable_then(PagedService(), failures=99)
    with sync_client(down, retries=2) as client, pytest.raises(CbTradeConnectionError) as caught:
        client.list_coins("cryptocom")
    assert caught.value.status_code is None
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(down.attempts) == 3


async def test_async_connection_errors_are_typed() -> None:
    down = unreachable_then(PagedService(), failures=99)
    async with async_client(down, retries=1) as client:
        with pytest.raises(CbTradeConnectionError):
            await client.latest_timestamp("cryptocom", "BTC/USD")
    assert len(down.attempts) == 2


def test_token_provider_is_asked_for_every_request() -> None:
    service = PagedService()
    tokens = iter(["jwt-1", "jwt-2"])
    with sync_client(service, api_key=None, token=lambda: next(tokens)) as client:
        client.get_candles("cryptocom", "BTC/USD", start=0)
    assert [r.headers["authorization"] for r in service.requests] == [
        "Bearer jwt-1",
        "Bearer jwt-2",
    ]
    with pytest.raises(ValueError, match="not both"):
        CandleClient("http://service", api_key="k", token="t")


def test_naive_datetimes_are_rejected() -> None:
    service = PagedService()
    with sync_client(service) as client:
        with pytest.raises(ValueError, match="timezone"):
            client.get_candles("cryptocom", "BTC/USD", start=datetime(2024, 1, 1))
        end = datetime(2024, 1, 1, 12)
        with pytest.raises(ValueError, match="timezone"):
            client.get_candles("cryptocom", "BTC/USD", start=0, end=end)
        with pytest.raises(TypeError, match="epoch milliseconds"):
            client.get_candles("cryptocom", "BTC/USD", start=1.5e12)  # type: ignore[arg-type]
    assert service.requests == []


async def test_metadata_endpoints() -> None:
    requests: list[httpx.Request] = []

    def service(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        bodies = {
            "/api/v1/exchanges": {"exchanges": ["binance", "cryptocom"]},
            "/api/v1/exchanges/cryptocom/coins": {"exchange": "cryptocom", "coins": ["BTC/USD"]},
            "/api/v1/ohlcv/latest": {
                "exchange": "cryptocom",
                "symbol": "BTC/USD",
                "timeframe": "1h",
                "timestamp": 1_704_067_200_000,
            },
        }
        return httpx.Response(200, json=bodies[request.url.path])

    with sync_client(service) as client:
        assert client.list_exchanges() == ["binance", "cryptocom"]
    async with async_client(service) as aclient:
        assert await aclient.list_coins("cryptocom") == ["BTC/USD"]
        latest = await aclient.latest_timestamp("cryptocom", "BTC/USD", timeframe="1h")
    assert latest == 1_704_067_200_000
    assert dict(requests[-1].url.params) == {
        "exchange": "cryptocom",
        "symbol": "BTC/USD",
        "timeframe": "1h",
    }


def test_dataframe_is_indexed_by_utc_open_time() -> None:
    pytest.importorskip("pandas")
    with sync_client(PagedService()) as client:
        frame = client.get_dataframe("cryptocom", "BTC/USD", start=0)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert str(frame.index.tz) == "UTC"
    assert frame["close"].tolist() == [1.5, 2.0, 2.5]


async def test_async_get_table_follows_link_headers() -> None:
    from cbtrade.api.encoding import encode_page
    from cbtrade.candle_table import CandleTable
    from cbtrade.historical.interfaces import OhlcvPage

    requests: list[httpx.Request] = []

    def arrow_service(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        token = request.url.params.get("continuation_token")
        candles, next_token = PAGES[token]
        link = next_token and f"/api/v1/ohlcv?continuation_token={next_token}&format=arrow"
        page = OhlcvPage(
            "cryptocom", "BTC/USD", "5m", CandleTable.from_candles(candles), next_token
        )
        encoded = encode_page(page, next_link=link, page_format="arrow")
        return httpx.Response(200, content=bytes(encoded.body), headers=dict(encoded.headers))

    async with async_client(arrow_service) as client:
        table = await client.get_table("cryptocom", "BTC/USD", start=0)
    assert [Candle(*row.values()) for row in table.to_pylist()] == ALL
    assert requests[0].url.params["format"] == "arrow"
    assert dict(requests[1].url.params) == {"continuation_token": "t1", "format": "arrow"}


class GatedService(PagedService):
    """A PagedService whose pages after the first wait until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.second_requested = threading.Event()
        self.gate = threading.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.params.get("continuation_token"):
            self.second_requested.set()
            assert self.gate.wait(timeout=10)
        return super().__call__(request)


@pytest.mark.parametrize("read_on", [True, False])
def test_the_next_page_is_requested_before_the_caller_reads_this_one(read_on: bool) -> None:
    service = GatedService()
    with sync_client(service) as client:
        candles = client.iter_candles("cryptocom", "BTC/USD", start=0)
        assert next(candles) == ALL[0]
        assert service.second_requested.wait(timeout=10)
        service.gate.set()
        if read_on:
            assert [ALL[0], *candles] == ALL
        else:  # abandoned: closing waits for the request in flight
            candles.close()
    assert len(service.requests) == 2


async def test_async_the_next_page_is_requested_early_and_cancelled_when_abandoned() -> None:
    requested: list[str | None] = []
    gate = asyncio.Event()

    async def service(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("continuation_token")
        requested.append(token)
        if token:
            await gate.wait()  # never opened: the walk is abandoned first
        return PagedService()(request)

    async with async_client(service) as client:
        candles = client.iter_candles("cryptocom", "BTC/USD", start=0)
        assert await anext(candles) == ALL[0]
        for _ in range(500):  # the early request runs as its own task
            if len(requested) == 2:
                break
            await asyncio.sleep(0.01)
        assert requested == [None, "t1"]
        await candles.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize("enabled_before", [True, False])
def test_a_page_is_decoded_without_garbage_collections_on_the_way(enabled_before: bool) -> None:
    candles = [Candle(i * 300_000, 1.0 + i, 2.0, 0.5, 1.5, 10.0) for i in range(20_000)]
    body = {"candles": [c._asdict() for c in candles], "continuation_token": None}
    page = httpx.Response(200, json=body)
    collections: list[str] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(f"generation {info['generation']}")

    threshold = gc.get_threshold()
    gc.callbacks.append(record)
    gc.set_threshold(100)  # would collect hundreds of times while 20,000 candles are made
    (gc.enable if enabled_before else gc.disable)()
    try:
        gc.collect()  # so that no collection is already due as the decoding starts
        collections.clear()
        decoded = _json_page(page)
        enabled_after = gc.isenabled()
    finally:
        gc.callbacks.remove(record)
        gc.set_threshold(*threshold)
        gc.enable()
    assert decoded == candles
    # Without the pause: hundreds. With it: none, or one deferred to the pause's end.
    assert len(collections) <= 1
    assert enabled_after is enabled_before


@pytest.mark.parametrize("first_out", ["first_in", "last_in"])
def test_the_gc_stays_paused_until_the_last_decoding_thread_is_done(first_out: str) -> None:
    inside, leave = threading.Event(), threading.Event()

    def decode_in_another_thread() -> None:
        with _GC_PAUSE:
            inside.set()
            leave.wait(10)

    assert gc.isenabled()
    other = threading.Thread(target=decode_in_another_thread)
    other.start()
    try:
        assert inside.wait(10)
        with _GC_PAUSE:
            if first_out == "first_in":
                leave.set()
                other.join(10)
            assert not gc.isenabled()
        assert gc.isenabled() is (first_out == "first_in")
    finally:
        leave.set()
        other.join(10)
    assert gc.isenabled()
