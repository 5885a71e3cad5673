"""HistoricalFetcher against the real local store and a fake exchange with a known truth."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cbtrade.errors import ExchangeUnavailableError, StorageUnavailableError, UnknownSymbolError
from cbtrade.historical.fetcher import HistoricalFetcher
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.interfaces import IStorageManager
from tests.unit.historical.conftest import (
    DAY,
    FIVE_MINUTES,
    LISTED_AT,
    NOW,
    FakeExchangeClient,
    fake_connector,
    fetch_candles,
    truth,
)

START = LISTED_AT + 10 * DAY
SPAN = 300 * FIVE_MINUTES  # one exchange call's worth


async def stored_coverage(storage: IStorageManager, start: int, end: int) -> list[TimeRange]:
    return (await storage.get_range_with_coverage("fake", "BTC/USD", "5m", start, end)).covered


async def test_nothing_stored_fetches_the_range_once_and_stores_it(
    fetcher: HistoricalFetcher, exchange: FakeExchangeClient, storage: IStorageManager
) -> None:
    end = START + 2 * SPAN
    assert await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, end) == truth(START, end)
    # The first call alone (an empty answer there would start a search for the listing).
    assert exchange.fetches == [
        ("BTC/USD", "5m", START, START + SPAN),
        ("BTC/USD", "5m", START + SPAN, end),
    ]
    assert exchange.calls == 2
    assert await storage.get_range("fake", "BTC/USD", "5m", START, end) == truth(START, end)
    assert await stored_coverage(storage, START, end) == [TimeRange(START, end)]


async def test_all_stored_makes_no_exchange_call(
    fetcher: HistoricalFetcher, exchange: FakeExchangeClient
) -> None:
    end = START + SPAN
    first = await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, end)
    exchange.fetches.clear()
    exchange.availability_checks = 0
    assert await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, end) == first
    assert await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START + SPAN // 3, end) == truth(
        START + SPAN // 3, end
    )
    assert exchange.fetches == []
    assert exchange.availability_checks == 0


@pytest.mark.parametrize(
    ("stored", "expected_fetches"),
    [
        # gap at the start: only [START, START+SPAN) is fetched
        ((START + SPAN, START + 3 * SPAN), [(START, START + SPAN)]),
        # gap at the end: fetched from the end of what is stored
        ((START, START + 2 * SPAN), [(START + 2 * SPAN, START + 3 * SPAN)]),
    ],
)
async def test_gaps_at_start_or_end_fetch_only_the_gap(
    fetcher: HistoricalFetcher,
    exchange: FakeExchangeClient,
    stored: tuple[int, int],
    expected_fetches: list[tuple[int, int]],
) -> None:
    await fetch_candles(fetcher, "fake", "BTC/USD", "5m", *stored)
    exchange.fetches.clear()
    end = START + 3 * SPAN
    assert await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, end) == truth(START, end)
    assert [(s, e) for _, _, s, e in exchange.fetches] == expected_fetches


async def test_gap_in_the_middle_is_fetched_alone_and_merged_in_order(
    fetcher: HistoricalFetcher, exchange: FakeExchangeClient
) -> None:
    await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, START + SPAN)
    await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START + 2 * SPAN, START + 3 * SPAN)
    exchange.fetches.clear()
    result = await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, START + 3 * SPAN)
    assert result == truth(START, START + 3 * SPAN)
    assert [c.timestamp for c in result] == sorted({c.timestamp for c in result})
    assert [(s, e) for _, _, s, e in exchange.fetches] == [(START + SPAN, START + 2 * SPAN)]


async def test_a_small_request_fetches_a_whole_call_and_the_next_request_is_free(
    fetcher: HistoricalFetcher, exchange: FakeExchangeClient
) -> None:
    small_end = START + 10 * FIVE_MINUTES
    assert await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, small_end) == truth(
        START, small_end
    )
    assert exchange.fetches == [("BTC/USD", "5m", START, START + SPAN)]
    more = await fetch_candles(fetcher, "fake", "BTC/USD", "5m", small_end, START + SPAN)
    assert more == truth(small_end, START + SPAN)
    assert exchange.calls == 1


async def test_stretch_stops_at_what_is_already_covered(
    fetcher: HistoricalFetcher, exchange: FakeExchangeClient
) -> None:
    await fetch_candles(
        fetcher, "fake", "BTC/USD", "5m", START + 20 * FIVE_MINUTES, START + SPAN * 2
    )
    exchange.fetches.clear()
    await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, START + 5 * FIVE_MINUTES)
    assert [(s, e) for _, _, s, e in exchange.fetches] == [(START, START + 20 * FIVE_MINUTES)]


async def test_range_before_listing_is_remembered_as_empty(
    fetcher: HistoricalFetcher, exchange: FakeExchangeClient, storage: IStorageManager
) -> None:
    before = LISTED_AT - 5 * SPAN
    assert await fetch_candles(fetcher, "fake", "BTC/USD", "5m", before, LISTED_AT) == []
    calls = exchange.calls
    assert await fetch_candles(fetcher, "fake", "BTC/USD", "5m", 0, LISTED_AT) == []
    assert exchange.calls == calls
    # Remembered as the series' bounds, not as empty objects for the years before.
    first = truth(LISTED_AT, LISTED_AT + DAY)[0].timestamp
    bounds = await storage.get_series_bounds("fake", "BTC/USD", "5m")
    assert (bounds.empty_before, bounds.first_candle) == (first, first)
    assert await stored_coverage(storage, before, LISTED_AT) == []


async def test_forming_candle_is_never_returned_or_stored(
    fetcher: HistoricalFetcher, storage: IStorageManager
) -> None:
    forming = NOW - NOW % FIVE_MINUTES
    result = await fetch_candles(
        fetcher, "fake", "BTC/USD", "5m", forming - 3 * FIVE_MINUTES, NOW + DAY
    )
    assert result
    assert all(c.timestamp + FIVE_MINUTES <= NOW for c in result)
    assert await storage.get_latest_timestamp("fake", "BTC/USD", "5m") == result[-1].timestamp
    assert await fetch_candles(fetcher, "fake", "BTC/USD", "5m", forming, NOW + DAY) == []


async def test_recent_empty_tail_within_grace_is_not_recorded(
    fetcher: HistoricalFetcher, exchange: FakeExchangeClient, storage: IStorageManager
) -> None:
    # The exchange has published nothing for the last two hours (it publishes late).
    exchange.quiet_after = NOW - 2 * 3_600_000
    horizon = NOW - NOW % FIVE_MINUTES
    start = horizon - 6 * 3_600_000
    result = await fetch_candles(fetcher, "fake", "BTC/USD", "5m", start, NOW)
    assert result == [c for c in truth(start, NOW) if c.timestamp < exchange.quiet_after]
    cutoff = NOW - 3_600_000
    cutoff -= cutoff % FIVE_MINUTES
    # Empty but older than the grace hour: recorded. Within the grace hour: not recorded.
    assert await stored_coverage(storage, start, horizon) == [TimeRange(start, cutoff)]
    exchange.fetches.clear()
    await fetch_candles(fetcher, "fake", "BTC/USD", "5m", start, NOW)
    assert [(s, e) for _, _, s, e in exchange.fetches] == [(cutoff, horizon)]


async def test_exchange_failure_records_nothing_and_a_later_retry_is_exact(
    fetcher: HistoricalFetcher, exchange: FakeExchangeClient, storage: IStorageManager
) -> None:
    exchange.failure = ExchangeUnavailableError("down")
    with pytest.raises(ExchangeUnavailableError):
        await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, START + SPAN)
    assert await stored_coverage(storage, START, START + SPAN) == []
    assert await storage.get_range("fake", "BTC/USD", "5m", START, START + SPAN) == []
    exchange.failure = None
    assert await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, START + SPAN) == truth(
        START, START + SPAN
    )


async def test_storage_failure_propagates_as_a_typed_error(
    storage: IStorageManager, exchange: FakeExchangeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise StorageUnavailableError("storage is down")

    monkeypatch.setattr(storage, "get_range_with_coverage", broken)
    fetcher = HistoricalFetcher(storage, fake_connector(exchange), clock=lambda: NOW)
    with pytest.raises(StorageUnavailableError):
        await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, START + SPAN)
    assert exchange.fetches == []


async def test_unknown_symbol_is_not_found_without_a_fetch(
    fetcher: HistoricalFetcher, exchange: FakeExchangeClient
) -> None:
    with pytest.raises(UnknownSymbolError):
        await fetch_candles(fetcher, "fake", "NOPE/USD", "5m", START, START + SPAN)
    assert exchange.fetches == []


async def test_delisted_symbol_still_serves_what_is_stored(
    fetcher: HistoricalFetcher, exchange: FakeExchangeClient
) -> None:
    stored = await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, START + SPAN)
    exchange.listed = frozenset({"ETH/USD"})
    exchange.fetches.clear()
    result = await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, START + 2 * SPAN)
    assert result == stored
    assert exchange.fetches == []


async def test_concurrent_overlapping_requests_are_exact_and_share_fetches(
    fetcher: HistoricalFetcher, exchange: FakeExchangeClient
) -> None:
    ranges = [(START + i * SPAN // 4, START + SPAN + i * SPAN // 2) for i in range(10)]
    results = await asyncio.gather(
        *(fetch_candles(fetcher, "fake", "BTC/USD", "5m", s, e) for s, e in ranges)
    )
    for (s, e), result in zip(ranges, results, strict=True):
        assert result == truth(s, e)
    overall = (min(s for s, _ in ranges), max(e for _, e in ranges))
    minimum = -(-(overall[1] - overall[0]) // SPAN)
    assert exchange.calls <= minimum + 1


async def test_a_long_gap_is_fetched_and_stored_in_parts_of_whole_calls(
    fetcher: HistoricalFetcher,
    exchange: FakeExchangeClient,
    storage: IStorageManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    end = START + 34 * SPAN
    saves: list[tuple[int, int]] = []
    save = storage.save_bulk_entries

    async def logged_save(*args: Any, **kwargs: Any) -> None:
        saves.append((kwargs["covered"][0].start, kwargs["covered"][-1].end))
        await save(*args, **kwargs)

    monkeypatch.setattr(storage, "save_bulk_entries", logged_save)
    assert await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, end) == truth(START, end)
    assert [(s, e) for _, _, s, e in exchange.fetches] == [
        (START + call * SPAN, START + (call + 1) * SPAN) for call in range(34)
    ]
    # The first call alone, then parts of ceil(33 / 4) = 9 calls.
    assert saves == [
        (START, START + SPAN),
        (START + SPAN, START + 10 * SPAN),
        (START + 10 * SPAN, START + 19 * SPAN),
        (START + 19 * SPAN, START + 28 * SPAN),
        (START + 28 * SPAN, end),
    ]
    assert exchange.calls == 34
    assert await stored_coverage(storage, START, end) == [TimeRange(START, end)]


async def test_the_next_part_is_fetched_while_a_part_is_stored(
    fetcher: HistoricalFetcher,
    exchange: FakeExchangeClient,
    storage: IStorageManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []
    fetch, save = exchange.fetch_historical_data, storage.save_bulk_entries

    async def logged_fetch(
        symbol: str, timeframe: str, start: int, end: int, **options: Any
    ) -> list[Candle]:
        events.append(f"fetch {(start - START) // SPAN}")
        return await fetch(symbol, timeframe, start, end, **options)

    async def logged_save(*args: Any, **kwargs: Any) -> None:
        await save(*args, **kwargs)
        events.append(f"saved {(args[3][0].timestamp - START) // SPAN}")

    monkeypatch.setattr(exchange, "fetch_historical_data", logged_fetch)
    monkeypatch.setattr(storage, "save_bulk_entries", logged_save)
    await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, START + 16 * SPAN)
    # The first call alone, then parts of 4 calls.
    assert sorted(events) == sorted(
        [f"fetch {call}" for call in range(16)] + [f"saved {p}" for p in (0, 1, 5, 9, 13)]
    )
    for part in (1, 5, 9):
        # The next part was asked for before this one was stored.
        assert events.index(f"fetch {part + 4}") < events.index(f"saved {part}")
    assert [event for event in events if event.startswith("saved")] == [
        "saved 0",
        "saved 1",
        "saved 5",
        "saved 9",
        "saved 13",
    ]


async def test_a_failed_call_records_nothing_and_the_calls_before_it_stay_stored(
    fetcher: HistoricalFetcher,
    exchange: FakeExchangeClient,
    storage: IStorageManager,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fetch = exchange.fetch_historical_data
    failing_from = START + 8 * SPAN

    async def failing(
        symbol: str, timeframe: str, start: int, end: int, **options: Any
    ) -> list[Candle]:
        candles = await fetch(symbol, timeframe, start, end, **options)
        if start >= failing_from:
            raise ExchangeUnavailableError("down")
        return candles

    monkeypatch.setattr(exchange, "fetch_historical_data", failing)
    end = START + 16 * SPAN
    with pytest.raises(ExchangeUnavailableError):
        await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, end)
    assert await stored_coverage(storage, START, end) == [TimeRange(START, failing_from)]
    assert await storage.get_range("fake", "BTC/USD", "5m", START, end) == truth(
        START, failing_from
    )
    monkeypatch.setattr(exchange, "fetch_historical_data", fetch)
    exchange.fetches.clear()
    exchange.calls = 0
    assert await fetch_candles(fetcher, "fake", "BTC/USD", "5m", START, end) == truth(START, end)
    assert exchange.calls == 8
