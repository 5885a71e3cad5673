"""HistoricalDataManagerImpl: pages, continuation tokens, and bounded work per page."""

from __future__ import annotations

import asyncio

import pytest

from cbtrade.errors import (
    InvalidContinuationTokenError,
    InvalidInputError,
    InvalidTimeframeError,
    StorageUnavailableError,
    UnknownExchangeError,
    UnknownSymbolError,
)
from cbtrade.historical.current_fetcher import CurrentDataFetcher
from cbtrade.historical.fetcher import HistoricalFetcher
from cbtrade.historical.manager import HistoricalDataManagerImpl
from cbtrade.models import Candle
from cbtrade.storage.interfaces import IStorageManager
from tests.unit.historical.conftest import (
    CODEC,
    DAY,
    FIVE_MINUTES,
    LISTED_AT,
    NOW,
    FakeExchangeClient,
    fake_connector,
    page_manager,
    truth,
)


@pytest.fixture
def manager(
    storage: IStorageManager, exchange: FakeExchangeClient, fetcher: HistoricalFetcher
) -> HistoricalDataManagerImpl:
    return page_manager(storage, exchange, fetcher, default_limit=1_000, max_limit=5_000)


async def follow(
    manager: HistoricalDataManagerImpl, **query: object
) -> tuple[list[Candle], list[int]]:
    """Every candle of a query, and the size of every page."""
    page = await manager.get_page(**query)  # type: ignore[arg-type]
    candles, sizes = page.candles.to_candles(), [len(page.candles)]
    limit = query.get("limit")
    while page.continuation_token is not None:
        page = await manager.get_page(continuation_token=page.continuation_token, limit=limit)  # type: ignore[arg-type]
        candles.extend(page.candles.to_candles())
        sizes.append(len(page.candles))
    return candles, sizes


@pytest.mark.parametrize("limit", [7, 299, 300, 301, 1_000, 4_999])
async def test_following_tokens_yields_exactly_the_truth_with_minimal_calls(
    manager: HistoricalDataManagerImpl, exchange: FakeExchangeClient, limit: int
) -> None:
    start, end = LISTED_AT + 3 * DAY + 7 * FIVE_MINUTES, LISTED_AT + 5 * DAY
    candles, sizes = await follow(
        manager,
        exchange_name="fake",
        coin_symbol="BTC/USD",
        start_time=start,
        end_time=end,
        limit=limit,
    )
    assert candles == truth(start, end)
    assert max(sizes) <= limit
    slots = (end - start) // FIVE_MINUTES + 1
    minimum = -(-slots // exchange.max_per_call)
    assert exchange.calls <= minimum + 1


async def test_second_read_is_served_from_storage(
    manager: HistoricalDataManagerImpl, exchange: FakeExchangeClient
) -> None:
    query = {
        "exchange_name": "fake",
        "coin_symbol": "BTC/USD",
        "start_time": LISTED_AT + DAY,
        "end_time": LISTED_AT + 2 * DAY,
    }
    first, _ = await follow(manager, **query)
    exchange.fetches.clear()
    second, _ = await follow(manager, **query)
    assert second == first
    assert exchange.fetches == []


async def test_empty_stretches_are_read_through_not_paged_one_by_one(
    manager: HistoricalDataManagerImpl,
) -> None:
    start = LISTED_AT - 20 * DAY
    end = LISTED_AT + 5 * DAY
    candles, sizes = await follow(
        manager,
        exchange_name="fake",
        coin_symbol="BTC/USD",
        start_time=start,
        end_time=end,
        limit=500,
    )
    assert candles == truth(start, end)
    assert sizes[0] == 500  # the first page read past 20 empty days to fill itself


async def test_end_defaults_to_now_and_is_fixed_in_the_token(
    manager: HistoricalDataManagerImpl,
) -> None:
    start = NOW - DAY
    candles, _ = await follow(
        manager, exchange_name="fake", coin_symbol="BTC/USD", start_time=start
    )
    assert candles == truth(start, NOW)


async def test_token_carries_the_query_and_repeated_parameters_must_match(
    manager: HistoricalDataManagerImpl,
) -> None:
    page = await manager.get_page(
        exchange_name="fake", coin_symbol="BTC/USD", start_time=LISTED_AT, limit=10
    )
    token = page.continuation_token
    assert token is not None
    again = await manager.get_page(
        exchange_name="fake", coin_symbol="BTC/USD", timeframe="5m", continuation_token=token
    )
    assert again.candles.first_timestamp() > page.candles.last_timestamp()
    with pytest.raises(InvalidContinuationTokenError, match="symbol"):
        await manager.get_page(coin_symbol="ETH/USD", continuation_token=token)
    with pytest.raises(InvalidContinuationTokenError):
        await manager.get_page(continuation_token=token[:-2])


async def test_the_token_alone_keeps_the_first_requests_limit(
    manager: HistoricalDataManagerImpl,
) -> None:
    start, end = LISTED_AT + DAY, LISTED_AT + 2 * DAY
    page = await manager.get_page(
        exchange_name="fake", coin_symbol="BTC/USD", start_time=start, end_time=end, limit=70
    )
    candles, sizes = page.candles.to_candles(), [len(page.candles)]
    while page.continuation_token is not None:
        page = await manager.get_page(continuation_token=page.continuation_token)
        candles.extend(page.candles.to_candles())
        sizes.append(len(page.candles))
    assert candles == truth(start, end)
    assert len(sizes) >= 3
    assert set(sizes[:-1]) == {70}  # not the default of 1,000
    assert sizes[-1] <= 70


async def test_a_limit_beside_a_token_must_match_unless_the_token_has_none(
    manager: HistoricalDataManagerImpl,
) -> None:
    query = {"exchange_name": "fake", "coin_symbol": "BTC/USD", "start_time": LISTED_AT}
    sized = await manager.get_page(**query, limit=10)  # type: ignore[arg-type]
    assert sized.continuation_token is not None
    same = await manager.get_page(continuation_token=sized.continuation_token, limit=10)
    assert len(same.candles) == 10
    with pytest.raises(InvalidContinuationTokenError, match="limit=20 does not match"):
        await manager.get_page(continuation_token=sized.continuation_token, limit=20)
    with pytest.raises(InvalidInputError, match="limit"):
        await manager.get_page(continuation_token=sized.continuation_token, limit=0)

    # A token issued for a query without a limit (or before tokens carried one) takes the
    # default, or a limit given beside it, which its successors then keep.
    unsized = await manager.get_page(**query)  # type: ignore[arg-type]
    assert len(unsized.candles) == 1_000
    assert unsized.continuation_token is not None
    default = await manager.get_page(continuation_token=unsized.continuation_token)
    assert len(default.candles) == 1_000
    chosen = await manager.get_page(continuation_token=unsized.continuation_token, limit=25)
    assert len(chosen.candles) == 25
    assert chosen.continuation_token is not None
    kept = await manager.get_page(continuation_token=chosen.continuation_token)
    assert len(kept.candles) == 25
    columns = await manager.get_page(
        continuation_token=unsized.continuation_token, default_limit=3_000
    )
    assert len(columns.candles) == 3_000


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        ({"coin_symbol": "BTC/USD", "start_time": LISTED_AT}, InvalidInputError, "exchange"),
        ({"exchange_name": "fake", "start_time": LISTED_AT}, InvalidInputError, "symbol"),
        ({"exchange_name": "fake", "coin_symbol": "BTC/USD"}, InvalidInputError, "start"),
        (
            {"exchange_name": "fake", "coin_symbol": "BTC/USD", "start_time": 10, "end_time": 5},
            InvalidInputError,
            "after start",
        ),
        (
            {"exchange_name": "fake", "coin_symbol": "BTC/USD", "start_time": 0, "limit": 0},
            InvalidInputError,
            "limit",
        ),
        (
            {"exchange_name": "fake", "coin_symbol": "BTC/USD", "start_time": 0, "limit": 5_001},
            InvalidInputError,
            "limit",
        ),
        (
            {
                "exchange_name": "fake",
                "coin_symbol": "BTC/USD",
                "start_time": 0,
                "timeframe": "90s",
            },
            InvalidTimeframeError,
            "90s",
        ),
        (
            {"exchange_name": "nowhere", "coin_symbol": "BTC/USD", "start_time": LISTED_AT},
            UnknownExchangeError,
            "nowhere",
        ),
        (
            {"exchange_name": "fake", "coin_symbol": "NOPE/USD", "start_time": LISTED_AT},
            UnknownSymbolError,
            "NOPE",
        ),
    ],
)
async def test_bad_queries_are_typed_errors(
    manager: HistoricalDataManagerImpl,
    query: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        await manager.get_page(**query)  # type: ignore[arg-type]


async def test_most_recent_timestamp(
    manager: HistoricalDataManagerImpl,
) -> None:
    assert await manager.get_most_recent_timestamp("fake", "BTC/USD", "5m") is None
    await follow(manager, exchange_name="fake", coin_symbol="BTC/USD", start_time=NOW - DAY)
    assert (
        await manager.get_most_recent_timestamp("fake", "BTC/USD", "5m")
        == truth(NOW - DAY, NOW)[-1].timestamp
    )
    with pytest.raises(UnknownExchangeError):
        await manager.get_most_recent_timestamp("nowhere", "BTC/USD", "5m")


class _RecordingStorage:
    """The real store, recording each range read and failing the ones asked to."""

    def __init__(self, storage: IStorageManager) -> None:
        self._storage = storage
        self.reads: list[tuple[int, int]] = []
        self.fail_from: set[int] = set()

    def __getattr__(self, name: str) -> object:
        return getattr(self._storage, name)

    async def get_range_with_coverage(self, *args: object) -> object:
        start, end = args[-2], args[-1]
        assert isinstance(start, int)
        assert isinstance(end, int)
        self.reads.append((start, end))
        if start in self.fail_from:
            self.fail_from.discard(start)
            raise StorageUnavailableError("the store is down for this read")
        return await self._storage.get_range_with_coverage(*args)  # type: ignore[arg-type]


def _reader(storage: _RecordingStorage, exchange: FakeExchangeClient) -> HistoricalDataManagerImpl:
    fetcher = HistoricalFetcher(storage, fake_connector(exchange), clock=lambda: NOW)  # type: ignore[arg-type]
    return HistoricalDataManagerImpl(
        fetcher,
        CurrentDataFetcher(storage),
        fake_connector(exchange),
        CODEC,  # type: ignore[arg-type]
    )


async def test_the_next_page_is_read_ahead_from_the_store_only(
    manager: HistoricalDataManagerImpl, storage: IStorageManager, exchange: FakeExchangeClient
) -> None:
    start, end = LISTED_AT + 3 * DAY, LISTED_AT + 4 * DAY
    query = {"exchange_name": "fake", "coin_symbol": "BTC/USD", "start_time": start}
    await follow(manager, end_time=end, limit=100, **query)  # stored now
    calls = exchange.calls
    recording = _RecordingStorage(storage)
    reader = _reader(recording, exchange)
    page = await reader.get_page(end_time=end, limit=100, **query)  # type: ignore[arg-type]
    pages, cursors = [page], []
    while page.continuation_token is not None:
        cursors.append(CODEC.decode(page.continuation_token).cursor)
        page = await reader.get_page(continuation_token=page.continuation_token, limit=100)
        pages.append(page)
    assert len(pages) > 2
    assert [c for p in pages for c in p.candles.to_candles()] == truth(start, end)
    assert exchange.calls == calls  # a read-ahead never asks the exchange
    for cursor in cursors:
        from_cursor = [read for read in recording.reads if read[0] == cursor]
        # Read ahead (a page's span from the cursor), then by the page itself.
        assert from_cursor[0] == (cursor, min(end, cursor + 100 * FIVE_MINUTES))
        assert len(from_cursor) >= 2


async def test_a_failed_read_ahead_is_left_to_the_page_it_was_for(
    manager: HistoricalDataManagerImpl, storage: IStorageManager, exchange: FakeExchangeClient
) -> None:
    start, end = LISTED_AT + 3 * DAY, LISTED_AT + 3 * DAY + 200 * FIVE_MINUTES
    query = {"exchange_name": "fake", "coin_symbol": "BTC/USD", "start_time": start}
    await follow(manager, end_time=end, limit=100, **query)
    token = (await manager.get_page(end_time=end, limit=100, **query)).continuation_token  # type: ignore[arg-type]
    assert token is not None
    recording = _RecordingStorage(storage)
    recording.fail_from = {CODEC.decode(token).cursor}  # the second page's read-ahead
    reader = _reader(recording, exchange)
    first = await reader.get_page(end_time=end, limit=100, **query)  # type: ignore[arg-type]
    assert first.continuation_token is not None
    second = await reader.get_page(continuation_token=first.continuation_token, limit=100)
    assert not recording.fail_from  # the read-ahead, which the page waited for, met the fault
    assert first.candles.to_candles() + second.candles.to_candles() == truth(start, end)


class _StalledStorage(_RecordingStorage):
    """A store whose range reads never finish: a read ahead runs until it is stopped."""

    def __init__(self, storage: IStorageManager) -> None:
        super().__init__(storage)
        self.stopped = 0

    async def get_range_with_coverage(self, *args: object) -> object:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.stopped += 1
            raise
        raise AssertionError("unreachable")


async def test_closing_the_fetcher_stops_the_reads_ahead(
    storage: IStorageManager, exchange: FakeExchangeClient
) -> None:
    stalled = _StalledStorage(storage)
    fetcher = HistoricalFetcher(stalled, fake_connector(exchange), clock=lambda: NOW)  # type: ignore[arg-type]
    fetcher.read_ahead("fake", "BTC/USD", "5m", LISTED_AT, LISTED_AT + DAY)
    fetcher.read_ahead("fake", "ETH/USD", "5m", LISTED_AT, LISTED_AT + DAY)
    await asyncio.sleep(0)  # both reads start, and wait on the store
    await fetcher.close()
    assert stalled.stopped == 2
    await fetcher.close()  # nothing left to stop


async def test_most_recent_timestamp_refuses_what_the_exchange_does_not_serve(
    manager: HistoricalDataManagerImpl, exchange: FakeExchangeClient
) -> None:
    with pytest.raises(UnknownSymbolError, match="NOPE/USD"):
        await manager.get_most_recent_timestamp("fake", "NOPE/USD", "5m")
    with pytest.raises(InvalidTimeframeError, match="1w"):
        await manager.get_most_recent_timestamp("fake", "BTC/USD", "1w")
    # A stored series is answered from storage, without asking the exchange (here: a symbol
    # delisted since it was stored).
    await follow(manager, exchange_name="fake", coin_symbol="ETH/USD", start_time=NOW - DAY)
    exchange.listed = frozenset({"BTC/USD"})
    checks = exchange.availability_checks
    assert await manager.get_most_recent_timestamp("fake", "ETH/USD", "5m") is not None
    assert exchange.availability_checks == checks
