"""Calendar candles through the real page manager and local-disk store, from a fake exchange
whose weeks start on Thursday and whose months start at 00:00 UTC+8: only closed candles are
served, on the exchange's own grid; re-reads are free; the forming candle and a late one are
asked for again until they are final."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cbtrade.calendar_timeframes import calendar_span
from cbtrade.config import load_settings
from cbtrade.exchange_source.interfaces import CandleWindow
from cbtrade.historical.calendar_pages import CalendarCandles
from cbtrade.historical.current_fetcher import CurrentDataFetcher
from cbtrade.historical.fetcher import HistoricalFetcher
from cbtrade.historical.manager import HistoricalDataManagerImpl
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.calendar_store import CalendarCandleStore
from cbtrade.storage.implementations.local_file_storage import LocalFileStorage
from cbtrade.storage.manager import create_storage_manager
from tests.unit.historical.conftest import CODEC, FakeExchangeClient, fake_connector

DAY = 86_400_000
WEEK = 7 * DAY
HOUR = 3_600_000
GRACE = HOUR
LISTED = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday
UTC8 = timedelta(hours=8)


def thursday_weeks(first: int, last: int) -> list[int]:
    """Open times of weeks from Thursday 00:00 UTC (epoch multiples) in ``[first, last]``."""
    return list(range(-(-first // WEEK) * WEEK, last + 1, WEEK))


def utc8_months(first: int, last: int) -> list[int]:
    """Open times of calendar months in UTC+8 (16:00 UTC the day before) in ``[first, last]``."""
    moment = datetime.fromtimestamp(first / 1000, UTC) + UTC8
    month = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    opens = []
    while True:
        opens.append(int((month - UTC8).timestamp() * 1000))
        if opens[-1] > last:
            return [t for t in opens if first <= t <= last]
        month = (month + timedelta(days=32)).replace(day=1)


GRIDS = {"1w": thursday_weeks, "1M": utc8_months}


def candle(timestamp: int) -> Candle:
    level = timestamp // DAY % 1000
    return Candle(timestamp, 100.0 + level, 110.0 + level, 90.0 + level, 105.0 + level, 7.0)


class CalendarExchange(FakeExchangeClient):
    """Offers 1w and 1M candles on its own grids; every 5th week has no trades. Candles
    opening from ``unpublished_from`` on are not published yet."""

    def __init__(self, clock: list[int]) -> None:
        super().__init__(max_per_call=20)
        self.clock = clock
        self.windows: list[tuple[str, int, int]] = []
        self.unpublished_from: int | None = None

    def offered_timeframes(self) -> list[str]:
        return ["5m", "1d", "1w", "1M"]

    def exists(self, timeframe: str, timestamp: int) -> bool:
        return timestamp >= LISTED and not (timeframe == "1w" and timestamp // WEEK % 5 == 0)

    def truth(self, timeframe: str, start: int, end: int) -> list[Candle]:
        """The closed candles opening in ``[start, end)``."""
        span = calendar_span(timeframe)
        assert span is not None
        return [
            candle(t)
            for t in GRIDS[timeframe](start, end - 1)
            if self.exists(timeframe, t) and span.end(t) <= self.clock[0]
        ]

    async def fetch_calendar_window(
        self, symbol: str, timeframe: str, start: int, end: int
    ) -> CandleWindow:
        span = calendar_span(timeframe)
        assert span is not None
        end = min(end, start + self.max_per_call * span.min_ms)
        self.windows.append((timeframe, start, end))
        last = min(end - 1, self.clock[0])
        if self.unpublished_from is not None:
            last = min(last, self.unpublished_from - 1)
        opens = [t for t in GRIDS[timeframe](start, last) if self.exists(timeframe, t)]
        assert len(opens) <= self.max_per_call
        return CandleWindow([candle(t) for t in opens], TimeRange(start, end))


@pytest.fixture
def clock() -> list[int]:
    return [int(datetime(2025, 6, 14, 12, tzinfo=UTC).timestamp() * 1000)]  # a Saturday


@pytest.fixture
async def manager(tmp_path: Path, clock: list[int]) -> HistoricalDataManagerImpl:
    exchange = CalendarExchange(clock)
    storage = create_storage_manager(load_settings(local_storage_root=tmp_path / "data"))
    connector = fake_connector(exchange)
    fetcher = HistoricalFetcher(
        storage, connector, empty_fetch_grace_ms=GRACE, clock=lambda: clock[0]
    )
    calendar = CalendarCandles(
        CalendarCandleStore(LocalFileStorage(tmp_path / "data")),
        connector,
        grace_ms=GRACE,
        clock=lambda: clock[0],
    )
    manager = HistoricalDataManagerImpl(
        fetcher, CurrentDataFetcher(storage), connector, CODEC, calendar=calendar
    )
    manager.exchange = exchange  # type: ignore[attr-defined]
    return manager


def exchange_of(manager: HistoricalDataManagerImpl) -> CalendarExchange:
    return manager.exchange  # type: ignore[attr-defined, no-any-return]


async def read_all(
    manager: HistoricalDataManagerImpl, timeframe: str, start: int, end: int | None = None,
    limit: int | None = None,
) -> tuple[list[Candle], int]:  # fmt: skip
    page = await manager.get_page(
        exchange_name="fake", coin_symbol="BTC/USD", timeframe=timeframe, start_time=start,
        end_time=end, limit=limit,
    )  # fmt: skip
    candles, pages = page.candles.to_candles(), 1
    while page.continuation_token is not None:
        page = await manager.get_page(continuation_token=page.continuation_token)
        candles += page.candles.to_candles()
        pages += 1
    assert page.derived_from is None
    return candles, pages


@pytest.mark.parametrize("timeframe", ["1w", "1M"])
async def test_pages_from_the_epoch_equal_the_closed_candles_on_the_exchange_grid(
    manager: HistoricalDataManagerImpl, clock: list[int], timeframe: str
) -> None:
    exchange = exchange_of(manager)
    candles, pages = await read_all(manager, timeframe, 0, limit=7)
    expected = exchange.truth(timeframe, 0, clock[0])
    assert candles == expected
    assert len(expected) > 14
    assert pages == -(-len(expected) // 7)
    # The forming candle is not served; the last one served closed before now.
    span = calendar_span(timeframe)
    assert span is not None
    assert span.end(candles[-1].timestamp) <= clock[0]
    windows = len(exchange.windows)
    again, _ = await read_all(manager, timeframe, 0, limit=7)
    assert again == candles
    assert len(exchange.windows) == windows  # a re-read costs no exchange call


async def test_the_forming_week_is_served_once_closed_and_only_it_is_asked_for(
    manager: HistoricalDataManagerImpl, clock: list[int]
) -> None:
    exchange = exchange_of(manager)
    start = LISTED
    before, _ = await read_all(manager, "1w", start)
    forming = thursday_weeks(clock[0] - WEEK + 1, clock[0])[0]
    assert before[-1].timestamp == forming - WEEK
    clock[0] = forming + WEEK + 2 * GRACE
    calls = len(exchange.windows)
    after, _ = await read_all(manager, "1w", start)
    assert after == exchange.truth("1w", start, clock[0])
    assert after[-1].timestamp == forming
    assert [w[1] for w in exchange.windows[calls:]] == [forming]


async def test_a_closed_week_published_late_is_asked_for_again(
    manager: HistoricalDataManagerImpl, clock: list[int]
) -> None:
    exchange = exchange_of(manager)
    newest = thursday_weeks(clock[0] - WEEK + 1, clock[0])[0]
    clock[0] = newest + WEEK + GRACE // 2  # the week closed within the grace period
    exchange.unpublished_from = newest
    first, _ = await read_all(manager, "1w", LISTED)
    assert first[-1].timestamp == newest - WEEK
    exchange.unpublished_from = None
    second, _ = await read_all(manager, "1w", LISTED)
    assert second == exchange.truth("1w", LISTED, clock[0])
    assert second[-1].timestamp == newest


async def test_a_window_is_never_fuller_than_one_call(
    manager: HistoricalDataManagerImpl, clock: list[int]
) -> None:
    # The fake asserts that no window holds more than max_per_call candles: 20 of the
    # shortest month (28 days) is the longest window asked.
    await read_all(manager, "1M", 0)
    longest = max(end - start for _, start, end in exchange_of(manager).windows)
    assert longest == 20 * 28 * DAY
