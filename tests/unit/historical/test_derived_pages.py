"""Pages of derived timeframes: whole closed buckets aggregated from the stored base series,
cut into pages and time budgets without splitting a bucket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cbtrade.historical import derived_pages
from cbtrade.historical.fetcher import HistoricalFetcher
from cbtrade.historical.manager import HistoricalDataManagerImpl
from cbtrade.models import Candle
from cbtrade.storage.interfaces import IStorageManager
from tests.fixtures.aggregation import (
    aggregated,
    assert_same_candles,
    calendar_month,
    monday_week,
)
from tests.unit.historical.conftest import (
    DAY,
    LISTED_AT,
    NOW,
    FakeExchangeClient,
    fake_connector,
    page_manager,
    truth,
)

HOUR = 3_600_000


@pytest.fixture
def manager(
    storage: IStorageManager, exchange: FakeExchangeClient, fetcher: HistoricalFetcher
) -> HistoricalDataManagerImpl:
    return page_manager(storage, exchange, fetcher)


def closed_by_now(bucket_end: Callable[[int], int]) -> Callable[[int], bool]:
    return lambda start: bucket_end(start) <= NOW


async def follow(
    manager: HistoricalDataManagerImpl, **query: object
) -> tuple[list[Candle], list[int], set[str | None]]:
    """Every candle of a query of fake BTC/USD, the size of every page, and the pages'
    derived_from."""
    page = await manager.get_page(exchange_name="fake", coin_symbol="BTC/USD", **query)  # type: ignore[arg-type]
    candles, sizes, bases = page.candles.to_candles(), [len(page.candles)], {page.derived_from}
    assert not page.sealed
    while page.continuation_token is not None:
        page = await manager.get_page(continuation_token=page.continuation_token)
        candles.extend(page.candles.to_candles())
        sizes.append(len(page.candles))
        bases.add(page.derived_from)
        assert not page.sealed
    return candles, sizes, bases


async def follow_weeks(
    manager: HistoricalDataManagerImpl, start: int, end: int | None, limit: int | None
) -> tuple[list[Candle], list[int]]:
    """Every page of a query for Monday weeks, checked against the aggregated daily truth."""
    candles, sizes, bases = await follow(
        manager,
        timeframe="1w",
        start_time=start,
        end_time=end,
        limit=limit,
    )
    base = truth(start, NOW if end is None else end, timeframe="1d")
    week_closed = closed_by_now(lambda week: week + 7 * DAY)
    assert_same_candles(candles, aggregated(base, monday_week, week_closed))
    assert bases == {"1d"}
    return candles, sizes


@pytest.mark.parametrize("limit", [1, 3, 100])
async def test_weeks_from_days_are_whole_closed_monday_weeks(
    manager: HistoricalDataManagerImpl, limit: int
) -> None:
    # From before the listing (those buckets are absent), to now.
    candles, sizes = await follow_weeks(manager, LISTED_AT - 10 * DAY, None, limit)
    assert max(sizes) <= limit
    # NOW is Friday 2024-03-01: the week from Monday 2024-02-26 is still forming.
    assert candles[-1].timestamp == LISTED_AT + 7 * 7 * DAY


async def test_buckets_with_missing_base_candles_are_made_of_those_present(
    manager: HistoricalDataManagerImpl,
) -> None:
    start, end = LISTED_AT + 3 * DAY + 5 * HOUR, LISTED_AT + 40 * DAY
    candles, _, bases = await follow(
        manager,
        timeframe="10h",
        start_time=start,
        end_time=end,
        limit=7,
    )
    first = -(-start // (10 * HOUR)) * 10 * HOUR
    base = truth(first, -(-end // (10 * HOUR)) * 10 * HOUR, timeframe="2h")
    assert_same_candles(
        candles,
        aggregated(base, lambda t: t - t % (10 * HOUR), closed_by_now(lambda b: b + 10 * HOUR)),
    )
    assert bases == {"2h"}
    # The fake market is quiet in every 97th 2h interval: some buckets hold four candles.
    assert any(
        len([c for c in base if c.timestamp // (10 * HOUR) == b.timestamp // (10 * HOUR)]) == 4
        for b in candles
    )


async def test_months_are_served_once_closed(
    manager: HistoricalDataManagerImpl,
) -> None:
    candles, _, bases = await follow(manager, timeframe="1M", start_time=0)
    base = truth(LISTED_AT, NOW, timeframe="1d")

    def month_end(start: int) -> int:
        return calendar_month(start + 32 * DAY)

    assert_same_candles(candles, aggregated(base, calendar_month, closed_by_now(month_end)))
    assert [c.timestamp for c in candles] == [LISTED_AT, LISTED_AT + 31 * DAY]  # Jan, Feb
    assert bases == {"1d"}


async def test_a_bucket_straddling_the_page_budget_waits_for_the_next_page(
    storage: IStorageManager, exchange: FakeExchangeClient, fetcher: HistoricalFetcher
) -> None:
    # No time budget: each page makes one exchange call of 10 days and stops, so a week
    # read partly is left to the next page, which reads it again from storage.
    exchange.max_per_call = 10
    manager = page_manager(storage, exchange, fetcher, page_time_budget_seconds=0)
    _, sizes = await follow_weeks(manager, LISTED_AT, LISTED_AT + 8 * 7 * DAY, None)
    assert len(sizes) > 2
    assert min(sizes[:-1]) >= 1


async def test_an_offered_timeframe_is_native_and_derived_pages_have_no_sealed_epoch(
    manager: HistoricalDataManagerImpl, exchange: FakeExchangeClient
) -> None:
    start, end = LISTED_AT, LISTED_AT + 2 * DAY
    page = await manager.get_page(
        exchange_name="fake", coin_symbol="BTC/USD", timeframe="8h", start_time=start, end_time=end
    )
    assert page.derived_from is None
    assert page.candles.to_candles() == truth(start, end, timeframe="8h")
    assert {timeframe for _, timeframe, _, _ in exchange.fetches} == {"8h"}
    assert (
        await manager.sealed_epoch(
            exchange_name="fake", coin_symbol="BTC/USD", timeframe="3d", continuation_token=None
        )
        is None
    )


async def test_a_bucket_waits_for_a_base_candle_published_late(
    storage: IStorageManager, exchange: FakeExchangeClient
) -> None:
    bucket = 10 * HOUR
    closed_at = -(-(LISTED_AT + 20 * DAY) // bucket) * bucket
    now = closed_at + 10 * 60_000  # the bucket ended 10 minutes ago: within the grace period
    fetcher = HistoricalFetcher(
        storage, fake_connector(exchange), empty_fetch_grace_ms=HOUR, clock=lambda: now
    )
    manager = page_manager(storage, exchange, fetcher)
    exchange.quiet_after = closed_at - 2 * HOUR  # its last 2h candle is not published yet
    start = closed_at - 5 * bucket
    candles, _, _ = await follow(manager, timeframe="10h", start_time=start)
    assert [c.timestamp for c in candles] == list(range(start, closed_at - bucket, bucket))
    # Published: a later query serves the bucket whole.
    exchange.quiet_after = None
    candles, _, _ = await follow(manager, timeframe="10h", start_time=start)
    base = truth(start, closed_at, timeframe="2h", now=now)
    assert_same_candles(candles, aggregated(base, lambda t: t - t % bucket, lambda b: True))
    assert candles[-1].timestamp == closed_at - bucket


async def test_large_buckets_are_read_a_bounded_number_of_base_candles_at_a_time(
    manager: HistoricalDataManagerImpl,
    fetcher: HistoricalFetcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(derived_pages, "MAX_BASE_CANDLES_PER_READ", 3)  # under a week of days
    spans: list[int] = []
    fetch_range = fetcher.fetch_range

    async def spied(*args: Any, **kwargs: Any) -> Any:
        spans.append(args[4] - args[3])
        return await fetch_range(*args, **kwargs)

    monkeypatch.setattr(fetcher, "fetch_range", spied)
    candles, sizes = await follow_weeks(manager, LISTED_AT, None, 5)
    assert len(candles) == 8
    assert max(sizes) <= 5
    assert max(spans) <= 7 * DAY  # one whole bucket at a time, never five
