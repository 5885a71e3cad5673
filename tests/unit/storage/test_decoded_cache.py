"""The decoded-object cache of ObjectRawDataStorage: validated by ETag, bounded in size."""

from __future__ import annotations

from pathlib import Path

from cbtrade.models import Candle, TimeRange
from cbtrade.storage import object_storage
from cbtrade.storage.implementations.local_file_storage import LocalFileStorage

STEP = 300_000
MONTH_5M = 8_928  # 31 days of 5m: January 1970 is one object


def _candles(count: int, price: float = 1.0) -> list[Candle]:
    return [Candle(i * STEP, price, price, price, price, 1.0) for i in range(count)]


async def test_a_changed_object_is_decoded_again(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path)
    await storage.save_bulk_entries("binance", "BTC/USDT", "5m", _candles(10))
    first = await storage.get_range("binance", "BTC/USDT", "5m", 0, 10 * STEP)
    again = await storage.get_range("binance", "BTC/USDT", "5m", 0, 10 * STEP)
    assert again == first
    await storage.save_bulk_entries("binance", "BTC/USDT", "5m", _candles(10, price=2.0))
    changed = await storage.get_range("binance", "BTC/USDT", "5m", 0, 10 * STEP)
    assert [c.open for c in changed] == [2.0] * 10


async def test_callers_cannot_change_the_cached_candles(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path)
    await storage.save_bulk_entries("binance", "BTC/USDT", "5m", _candles(10))
    first = await storage.get_range("binance", "BTC/USDT", "5m", 0, 10 * STEP)
    first.clear()
    assert len(await storage.get_range("binance", "BTC/USDT", "5m", 0, 10 * STEP)) == 10


async def test_the_cache_holds_a_bounded_number_of_objects(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path)
    months = object_storage.DECODED_CACHE_OBJECTS + 3
    count = months * MONTH_5M  # spans more months than the cache holds
    covered = [TimeRange(0, count * STEP)]
    await storage.save_bulk_entries("binance", "BTC/USDT", "5m", _candles(count), covered=covered)
    for _ in range(2):  # the second read finds some objects cached while others load
        stored = await storage.get_range("binance", "BTC/USDT", "5m", 0, count * STEP)
        assert len(stored) == count
    assert len(storage._decoded) == object_storage.DECODED_CACHE_OBJECTS
