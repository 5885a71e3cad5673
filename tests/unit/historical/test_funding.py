"""FundingHistory: gap-filling by time coverage and paging, against a fake exchange whose
funding interval changes (8h, then 4h) and that fills over-full answers from either end."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from cbtrade.errors import (
    FundingHistoryUnavailableError,
    InvalidContinuationTokenError,
    InvalidInputError,
)
from cbtrade.exchange_source.interfaces import FundingWindow
from cbtrade.historical.funding import FundingHistory, FundingPage
from cbtrade.historical.timed_pages import covered_from
from cbtrade.historical.tokens import ContinuationTokenCodec, PageCursor
from cbtrade.models import FundingRate, TimeRange
from cbtrade.storage.funding_store import FundingStore
from cbtrade.storage.implementations.local_file_storage import LocalFileStorage
from tests.unit.historical.conftest import DAY, FakeExchangeClient, fake_connector

HOUR = 3_600_000
LISTED = 1_704_067_200_000  # 2024-01-01
SWITCH = 1_709_251_200_000  # 2024-03-01: 8h -> 4h
NOW = SWITCH + 40 * DAY + 5 * 60_000


def funding_truth(start: int, end: int, *, now: int = NOW) -> list[FundingRate]:
    """Every 8h from the listing, every 4h from the switch; published at its time."""
    events = []
    t = LISTED
    while t < min(end, now + 1):
        if t >= start:
            events.append(FundingRate(t, ((t // HOUR) % 17 - 8) / 100_000))
        t += 8 * HOUR if t < SWITCH else 4 * HOUR
    return events


class FakeFundingExchange(FakeExchangeClient):
    """Answers funding windows from ``funding_truth``, at most ``per_call`` events, filled
    from the window's ``fill`` end; counts its calls."""

    def __init__(self, *, per_call: int, fill: Literal["start", "end"]) -> None:
        super().__init__()
        self.per_call, self.fill = per_call, fill
        self.now = NOW
        self.funding_calls: list[tuple[int, int]] = []

    async def fetch_funding_window(self, symbol: str, start: int, end: int) -> FundingWindow:
        if symbol == "BTC/USD":
            raise FundingHistoryUnavailableError("BTC/USD is a spot market")
        self.funding_calls.append((start, end))
        events = funding_truth(start, end, now=self.now)
        if len(events) < self.per_call:
            return FundingWindow(events, TimeRange(start, end))
        if self.fill == "start":
            events = events[: self.per_call]
            return FundingWindow(events, TimeRange(start, events[-1].timestamp + 1))
        events = events[-self.per_call :]
        return FundingWindow(events, TimeRange(events[0].timestamp, end))


def history(
    tmp_path: Path, exchange: FakeFundingExchange, *, clock: int = NOW
) -> tuple[FundingHistory, ContinuationTokenCodec]:
    codec = ContinuationTokenCodec(b"0123456789abcdef0123")
    store = FundingStore(LocalFileStorage(tmp_path / "data"))
    funding = FundingHistory(store, fake_connector(exchange), codec, clock=lambda: clock)
    return funding, codec


async def read_all(funding: FundingHistory, **query: object) -> tuple[list[FundingRate], int]:
    events: list[FundingRate] = []
    page: FundingPage = await funding.get_page(**query)  # type: ignore[arg-type]
    pages = 1
    while True:
        stamps = page.events.column("timestamp").to_pylist()
        rates = page.events.column("rate").to_pylist()
        events += [FundingRate(t, r) for t, r in zip(stamps, rates, strict=True)]
        if page.continuation_token is None:
            return events, pages
        page = await funding.get_page(continuation_token=page.continuation_token)
        pages += 1


@pytest.mark.parametrize("fill", ["start", "end"])
async def test_pages_equal_truth_across_an_interval_change(
    tmp_path: Path, fill: Literal["start", "end"]
) -> None:
    exchange = FakeFundingExchange(per_call=50, fill=fill)
    funding, _ = history(tmp_path, exchange)
    start, end = SWITCH - 45 * DAY, SWITCH + 35 * DAY  # settled: more than the grace ago
    events, pages = await read_all(
        funding, exchange_name="fake", coin_symbol="BTC/USDT:USDT", start_time=start,
        end_time=end, limit=100,
    )  # fmt: skip
    assert events == funding_truth(start, end)
    assert pages == -(-len(events) // 100) or pages == -(-len(events) // 100) + 1
    calls = len(exchange.funding_calls)
    assert calls >= -(-len(events) // 50)
    # A re-read of the covered range costs no exchange call.
    again, _ = await read_all(
        funding, exchange_name="fake", coin_symbol="BTC/USDT:USDT", start_time=start,
        end_time=end, limit=100,
    )  # fmt: skip
    assert again == events
    assert len(exchange.funding_calls) == calls


async def test_a_page_of_limit_events_continues_at_the_next_event(tmp_path: Path) -> None:
    exchange = FakeFundingExchange(per_call=1000, fill="start")
    funding, codec = history(tmp_path, exchange)
    page = await funding.get_page(
        exchange_name="fake", coin_symbol="BTC/USDT:USDT", start_time=LISTED, limit=10
    )
    truth = funding_truth(LISTED, NOW)
    assert page.events.column("timestamp").to_pylist() == [e.timestamp for e in truth[:10]]
    assert page.continuation_token is not None
    cursor = codec.decode(page.continuation_token)
    assert (cursor.cursor, cursor.end, cursor.limit) == (truth[10].timestamp, NOW, 10)


async def test_coverage_reaches_the_newest_event_and_a_later_read_asks_only_after_it(
    tmp_path: Path,
) -> None:
    exchange = FakeFundingExchange(per_call=1000, fill="start")
    funding, _ = history(tmp_path, exchange)
    events, _ = await read_all(
        funding, exchange_name="fake", coin_symbol="BTC/USDT:USDT", start_time=NOW - 2 * DAY
    )
    assert events == funding_truth(NOW - 2 * DAY, NOW)
    assert exchange.funding_calls == [(NOW - 2 * DAY, NOW)]
    later = NOW + 9 * HOUR
    exchange.now = later
    funding_later, _ = history(tmp_path, exchange, clock=later)
    events, _ = await read_all(
        funding_later, exchange_name="fake", coin_symbol="BTC/USDT:USDT", start_time=NOW - 2 * DAY
    )
    assert events == funding_truth(NOW - 2 * DAY, later, now=later)
    # Within the grace period before now only what the newest event proves is recorded.
    newest = funding_truth(NOW - 2 * DAY, NOW)[-1].timestamp
    assert NOW - newest < HOUR
    assert exchange.funding_calls[1:] == [(newest + 1, later)]


async def test_an_event_published_late_is_asked_for_again(tmp_path: Path) -> None:
    exchange = FakeFundingExchange(per_call=1000, fill="start")
    due = funding_truth(NOW - DAY, NOW)[-1].timestamp
    exchange.now = due - 1  # settled at ``due``, published a minute later
    early, _ = history(tmp_path, exchange, clock=due + 10_000)
    query = {"exchange_name": "fake", "coin_symbol": "BTC/USDT:USDT", "start_time": NOW - DAY}
    events, _ = await read_all(early, **query)
    assert due not in [event.timestamp for event in events]
    exchange.now = due + 60_000
    later, _ = history(tmp_path, exchange, clock=due + 5 * 60_000)
    events, _ = await read_all(later, **query)
    assert events == funding_truth(NOW - DAY, due + 1)


async def test_before_the_listing_is_empty_and_covered(tmp_path: Path) -> None:
    exchange = FakeFundingExchange(per_call=1000, fill="end")
    funding, _ = history(tmp_path, exchange)
    query = {
        "exchange_name": "fake",
        "coin_symbol": "BTC/USDT:USDT",
        "start_time": LISTED - 30 * DAY,
        "end_time": LISTED,
    }
    assert await read_all(funding, **query) == ([], 1)
    assert await read_all(funding, **query) == ([], 1)
    assert exchange.funding_calls == [(LISTED - 30 * DAY, LISTED)]


async def test_bad_queries_are_refused(tmp_path: Path) -> None:
    exchange = FakeFundingExchange(per_call=1000, fill="start")
    funding, codec = history(tmp_path, exchange)
    with pytest.raises(FundingHistoryUnavailableError):
        await funding.get_page(exchange_name="fake", coin_symbol="BTC/USD", start_time=LISTED)
    with pytest.raises(InvalidInputError, match="missing start"):
        await funding.get_page(exchange_name="fake", coin_symbol="BTC/USDT:USDT")
    with pytest.raises(InvalidInputError, match="must be after start"):
        await funding.get_page(
            exchange_name="fake", coin_symbol="BTC/USDT:USDT", start_time=LISTED, end_time=LISTED
        )
    candle_token = codec.encode(
        PageCursor(exchange="fake", symbol="BTC/USD", timeframe="5m", start=0, end=1, cursor=0)
    )
    with pytest.raises(InvalidContinuationTokenError, match="ohlcv"):
        await funding.get_page(continuation_token=candle_token)
    assert exchange.funding_calls == []


def test_covered_from_follows_the_stretch_holding_the_position() -> None:
    covered = [TimeRange(0, 10), TimeRange(10, 20), TimeRange(30, 40)]
    assert covered_from(5, covered) == 20
    assert covered_from(20, covered) == 20
    assert covered_from(25, covered) == 25
    assert covered_from(30, covered) == 40
