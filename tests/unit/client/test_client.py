"""CandleClient and AsyncCandleClient against a mock transport serving DESIGN.md pages
(tests/integration/api/test_python_client.py has them against the real service)."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import types
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from cbtrade_client import (
    AsyncCandleClient,
    AuthenticationError,
    Candle,
    CandleClient,
    CbTradeConnectionError,
    FundingRate,
    NotFoundError,
    ServiceUnavailableError,
)
from cbtrade_client._decode import GC_PAUSE, json_candles

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


def no_wait(seconds: float) -> None:
    """The clients' sleep between attempts, skipped (tests/unit/client/test_retry.py has
    the waits)."""


async def no_async_wait(seconds: float) -> None:
    """As ``no_wait``, for the async client."""


def sync_client(service: Any, **options: Any) -> CandleClient:
    options = {"api_key": "k", "sleep": no_wait, **options}
    return CandleClient("http://service", transport=httpx.MockTransport(service), **options)


def async_client(service: Any, **options: Any) -> AsyncCandleClient:
    options = {"sleep": no_async_wait, **options}
    return AsyncCandleClient("http://service", transport=httpx.MockTransport(service), **options)


def test_pages_are_followed_with_the_token() -> None:
    service = PagedService()
    with sync_client(service) as client:
        start = datetime(2024, 1, 1, tzinfo=UTC)
        end = 1_704_153_600_000
        assert client.get_candles("cryptocom", "BTC/USD", start=start, end=end, limit=2) == ALL
    first, second = service.requests
    assert first.headers["authorization"] == "Bearer k"
    assert dict(first.url.params) == {
        "exchange": "cryptocom",
        "symbol": "BTC/USD",
        "timeframe": "5m",
        "start": "1704067200000",
        "end": "1704153600000",
        "limit": "2",
    }
    assert dict(second.url.params) == {"continuation_token": "t1", "limit": "2"}
    assert first.headers["user-agent"].startswith("cbtrade-client/")


async def test_async_client_follows_pages_too() -> None:
    service = PagedService()
    async with async_client(service) as client:
        assert await client.get_candles("cryptocom", "BTC/USD", start=0) == ALL
    assert "authorization" not in service.requests[0].headers
    assert service.requests[1].url.params["continuation_token"] == "t1"


def test_errors_are_typed_and_4xx_is_not_retried() -> None:
    service = PagedService(failures=[404])
    with sync_client(service) as client, pytest.raises(NotFoundError) as caught:
        client.get_candles("cryptocom", "NOPE/USD", start=0)
    assert (caught.value.status_code, caught.value.code) == (404, "code_404")
    assert len(service.requests) == 1


def test_transient_errors_are_retried_a_bounded_number_of_times() -> None:
    recovering = PagedService(failures=[503, 502])
    with sync_client(recovering, retries=2) as client:
        assert client.get_candles("cryptocom", "BTC/USD", start=0) == ALL
    down = PagedService(failures=[503] * 10)
    with sync_client(down, retries=2) as client, pytest.raises(ServiceUnavailableError):
        client.get_candles("cryptocom", "BTC/USD", start=0)
    assert len(down.requests) == 3


async def test_async_client_maps_errors_and_bounds_retries() -> None:
    down = PagedService(failures=[504] * 10)
    async with async_client(down, retries=1) as client:
        with pytest.raises(ServiceUnavailableError) as caught:
            await client.get_candles("cryptocom", "BTC/USD", start=0)
    assert (caught.value.status_code, caught.value.code) == (504, "code_504")
    assert len(down.requests) == 2


def test_error_without_a_json_body_is_still_typed() -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text="<html>Unauthorized</html>")

    with sync_client(gateway) as client, pytest.raises(AuthenticationError) as caught:
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


def test_times_are_sent_as_epoch_milliseconds_whatever_their_form() -> None:
    service = PagedService()
    forms: list[dict[str, Any]] = [
        {"start": "2024-01-01", "end": "2024-01-01T12:00:00Z"},
        {"start": datetime(2024, 1, 1), "end": datetime(2024, 1, 1, 12)},  # naive: UTC
        {"start": 1_704_067_200_000, "end": "2024-01-01T13:00:00+01:00"},
    ]
    with sync_client(service) as client:
        for form in forms:
            client.get_candles("cryptocom", "BTC/USD", **form)
    firsts = [r for r in service.requests if "continuation_token" not in r.url.params]
    assert [(r.url.params["start"], r.url.params["end"]) for r in firsts] == [
        ("1704067200000", "1704110400000")
    ] * 3


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        ({"start": 1_704_067_200}, ValueError, "start=1704067200 looks like epoch seconds"),
        ({"start": 0, "end": 20240102}, ValueError, "end=20240102 looks like a compact date"),
        ({"start": 1.5e12}, TypeError, "start must be a datetime"),
        ({"start": "next week"}, ValueError, "start='next week' is not an ISO-8601"),
        ({"start": 0, "strat": 1}, TypeError, "got an unexpected keyword argument 'strat'"),
        ({"end": 0}, TypeError, "missing a required keyword argument: 'start'"),
    ],
)
async def test_bad_queries_are_refused_before_anything_is_sent(
    query: dict[str, Any], error: type[Exception], message: str
) -> None:
    service = PagedService()
    with sync_client(service) as client:
        with pytest.raises(error, match=message):
            client.iter_candles("cryptocom", "BTC/USD", **query)
        with pytest.raises(error, match=message):
            client.get_table("cryptocom", "BTC/USD", **query)
    async with async_client(service) as aclient:
        with pytest.raises(error, match=message):
            aclient.iter_candles("cryptocom", "BTC/USD", **query)
    assert service.requests == []


def test_unknown_client_options_are_a_type_error() -> None:
    with pytest.raises(
        TypeError, match="CandleClient\\(\\) got an unexpected keyword argument 'retry'"
    ):
        CandleClient("http://service", retry=3)  # type: ignore[call-arg]


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


class ArrowService:
    """Answers /api/v1/ohlcv with the PAGES as Arrow pages, encoded by the service's own
    encoder; records every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        from cbtrade.api.encoding import encode_page
        from cbtrade.candle_table import CandleTable
        from cbtrade.historical.interfaces import OhlcvPage

        self.requests.append(request)
        token = request.url.params.get("continuation_token")
        candles, next_token = PAGES[token]
        link = next_token and f"/api/v1/ohlcv?continuation_token={next_token}&format=arrow"
        table = CandleTable.from_candles(candles)
        page = OhlcvPage("cryptocom", "BTC/USD", "5m", table, next_token)
        encoded = encode_page(page, next_link=link, page_format="arrow")
        return httpx.Response(200, content=bytes(encoded.body), headers=dict(encoded.headers))


def test_dataframe_is_indexed_by_utc_open_time() -> None:
    service = ArrowService()
    with sync_client(service) as client:
        frame = client.get_dataframe("cryptocom", "BTC/USD", start=0)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert str(frame.index.tz) == "UTC"
    assert frame.index.name == "timestamp"
    assert list(frame.index.asi8 // 1_000_000) == [c.timestamp for c in ALL]
    assert frame["close"].tolist() == [1.5, 2.0, 2.5]
    assert [r.url.params.get("format") for r in service.requests] == ["arrow", "arrow"]


async def test_async_get_table_follows_link_headers() -> None:
    service = ArrowService()
    async with async_client(service) as client:
        table = await client.get_table("cryptocom", "BTC/USD", start=0)
        frame = await client.get_dataframe("cryptocom", "BTC/USD", start=0)
    assert [Candle(*row.values()) for row in table.to_pylist()] == ALL
    assert frame["volume"].tolist() == [c.volume for c in ALL]
    assert service.requests[0].url.params["format"] == "arrow"
    assert dict(service.requests[1].url.params) == {"continuation_token": "t1", "format": "arrow"}


@pytest.mark.parametrize(
    ("method", "hidden", "extra"),
    [
        ("get_table", "pyarrow", "arrow"),
        ("get_dataframe", "pyarrow", "pandas"),
        ("get_dataframe", "pandas", "pandas"),
        ("get_candles", "tqdm", "progress"),
    ],
)
def test_a_missing_optional_package_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, method: str, hidden: str, extra: str
) -> None:
    """(The fresh venv of tests/integration/api/test_python_client.py has them really
    missing.)"""
    monkeypatch.setitem(sys.modules, hidden, None)  # an import of it fails as if absent
    service = ArrowService()
    with sync_client(service) as client, pytest.raises(ModuleNotFoundError) as caught:
        getattr(client, method)("cryptocom", "BTC/USD", start=0, progress=method == "get_candles")
    assert f"pip install 'cbtrade-client[{extra}]'" in str(caught.value)
    assert caught.value.name == hidden
    assert service.requests == []


class FakeBar:
    """Stands in for tqdm's bar (not a dependency of the service's venv); records its use."""

    bars: list[FakeBar] = []

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.updates: list[int] = []
        self.postfix: dict[str, Any] = {}
        self.closed = False
        FakeBar.bars.append(self)

    def update(self, n: int) -> None:
        self.updates.append(n)

    def set_postfix(self, refresh: bool = True, **postfix: Any) -> None:
        self.postfix = postfix

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_tqdm(monkeypatch: pytest.MonkeyPatch) -> type[FakeBar]:
    package, auto = types.ModuleType("tqdm"), types.ModuleType("tqdm.auto")
    auto.tqdm = FakeBar  # type: ignore[attr-defined]
    package.auto = auto  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm", package)
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
    FakeBar.bars = []
    return FakeBar


async def test_progress_counts_candles_and_pages_and_is_off_by_default(
    fake_tqdm: type[FakeBar],
) -> None:
    with sync_client(PagedService()) as client:
        client.get_candles("cryptocom", "BTC/USD", start=0)
        assert fake_tqdm.bars == []
        client.get_candles("cryptocom", "BTC/USD", start=0, progress=True)
        client.get_candles("cryptocom", "BTC/USD", start=0, progress=False)
    async with async_client(ArrowService()) as aclient:
        await aclient.get_table("cryptocom", "BTC/USD", start=0, timeframe="1h", progress=True)
    json_bar, arrow_bar = fake_tqdm.bars
    assert json_bar.options["desc"] == "cryptocom BTC/USD 5m"
    assert json_bar.options["unit"] == " candles"
    assert (json_bar.updates, json_bar.postfix, json_bar.closed) == ([2, 1], {"pages": 2}, True)
    assert arrow_bar.options["desc"] == "cryptocom BTC/USD 1h"
    assert (arrow_bar.updates, arrow_bar.postfix, arrow_bar.closed) == ([2, 1], {"pages": 2}, True)


def test_an_abandoned_read_closes_its_progress_bar(fake_tqdm: type[FakeBar]) -> None:
    with sync_client(PagedService()) as client:
        candles = client.iter_candles("cryptocom", "BTC/USD", start=0, progress=True)
        assert next(candles) == ALL[0]
        candles.close()
    (bar,) = fake_tqdm.bars
    assert (bar.updates, bar.closed) == ([2], True)


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
    second_requested, gate = asyncio.Event(), asyncio.Event()

    async def service(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("continuation_token")
        requested.append(token)
        if token:
            second_requested.set()
            await gate.wait()  # never opened: the walk is abandoned first
        return PagedService()(request)

    async with async_client(service) as client:
        candles = client.iter_candles("cryptocom", "BTC/USD", start=0)
        assert await anext(candles) == ALL[0]
        await asyncio.wait_for(second_requested.wait(), timeout=10)  # its own task
        assert requested == [None, "t1"]
        await candles.aclose()


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
        decoded = json_candles(page)
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
        with GC_PAUSE:
            inside.set()
            leave.wait(10)

    assert gc.isenabled()
    other = threading.Thread(target=decode_in_another_thread)
    other.start()
    try:
        assert inside.wait(10)
        with GC_PAUSE:
            if first_out == "first_in":
                leave.set()
                other.join(10)
            assert not gc.isenabled()
        assert gc.isenabled() is (first_out == "first_in")
    finally:
        leave.set()
        other.join(10)
    assert gc.isenabled()


FUNDING_PAGES = {
    None: ([FundingRate(1_709_251_200_000, 0.0001), FundingRate(1_709_265_600_000, -2e-05)], "f1"),
    "f1": ([FundingRate(1_709_280_000_000, 0.0003)], None),
}


def funding_service(requests: list[httpx.Request]) -> Any:
    """Answers /api/v1/funding page by page, as the service does."""

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        assert request.url.path == "/api/v1/funding"
        events, next_token = FUNDING_PAGES[request.url.params.get("continuation_token")]
        next_link = next_token and f"/api/v1/funding?continuation_token={next_token}"
        return httpx.Response(
            200,
            json={
                "exchange": "binance",
                "symbol": "BTC/USDT:USDT",
                "funding": [e._asdict() for e in events],
                "continuation_token": next_token,
                "next_link": next_link,
            },
            headers={"Link": f'<{next_link}>; rel="next"'} if next_link else {},
        )

    return handler


def test_get_funding_follows_the_pages() -> None:
    requests: list[httpx.Request] = []
    with sync_client(funding_service(requests)) as client:
        events = client.get_funding("binance", "BTC/USDT:USDT", "2024-03-01", limit=2)
    assert events == FUNDING_PAGES[None][0] + FUNDING_PAGES["f1"][0]
    assert dict(requests[0].url.params) == {
        "exchange": "binance",
        "symbol": "BTC/USDT:USDT",
        "start": "1709251200000",
        "limit": "2",
    }
    assert dict(requests[1].url.params) == {"continuation_token": "f1"}


async def test_async_get_funding_follows_the_pages() -> None:
    requests: list[httpx.Request] = []
    async with async_client(funding_service(requests)) as client:
        events = await client.get_funding("binance", "BTC/USDT:USDT", 0, 1_709_300_000_000)
        with pytest.raises(ValueError, match="epoch seconds"):
            await client.get_funding("binance", "BTC/USDT:USDT", 1_709_251_200)
    assert events == FUNDING_PAGES[None][0] + FUNDING_PAGES["f1"][0]
    assert requests[0].url.params["end"] == "1709300000000"
    assert len(requests) == 2
