"""CurrentDataFetcher reads the newest stored timestamp from storage."""

from __future__ import annotations

from unittest.mock import AsyncMock

from cbtrade.historical.current_fetcher import CurrentDataFetcher
from cbtrade.historical.fetcher import HistoricalFetcher
from cbtrade.storage.interfaces import IStorageManager
from tests.unit.historical.conftest import DAY, LISTED_AT, truth


async def test_get_latest_timestamp_delegates_to_storage() -> None:
    storage = AsyncMock(spec=IStorageManager)
    storage.get_latest_timestamp.return_value = 1_704_067_200_000
    fetcher = CurrentDataFetcher(storage)
    assert await fetcher.get_latest_timestamp("fake", "BTC/USD", "5m") == 1_704_067_200_000
    storage.get_latest_timestamp.assert_awaited_once_with("fake", "BTC/USD", "5m")


async def test_none_when_nothing_is_stored(storage: IStorageManager) -> None:
    assert await CurrentDataFetcher(storage).get_latest_timestamp("fake", "BTC/USD", "5m") is None


async def test_newest_candle_after_a_fill(
    storage: IStorageManager, fetcher: HistoricalFetcher
) -> None:
    start, end = LISTED_AT + DAY, LISTED_AT + 2 * DAY
    await fetcher.fetch_data("fake", "BTC/USD", "5m", start, end)
    latest = await CurrentDataFetcher(storage).get_latest_timestamp("fake", "BTC/USD", "5m")
    # The fill was stretched to whole exchange calls, so the newest stored candle is the
    # newest the stretched window held.
    assert latest is not None
    assert latest >= truth(start, end)[-1].timestamp
