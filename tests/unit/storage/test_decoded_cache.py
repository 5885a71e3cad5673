"""The decoded-object cache of ObjectRawDataStorage: validated by ETag, bounded in bytes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cbtrade.models import Candle, TimeRange
from cbtrade.storage import object_storage
from cbtrade.storage.implementations.local_file_storage import LocalFileStorage

STEP = 300_000
DAY = 86_400_000
MONTH_5M = 8_928  # 31 days of 5m: January 1970 is one object
CANDLE_BYTES = 48  # six 8-byte columns


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


async def test_a_deleted_object_leaves_the_cache(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path)
    await storage.save_bulk_entries("binance", "BTC/USDT", "5m", _candles(10))
    assert len(await storage.get_range("binance", "BTC/USDT", "5m", 0, 10 * STEP)) == 10
    for path in tmp_path.rglob("*.arrow"):
        path.unlink()
    assert await storage.get_range("binance", "BTC/USDT", "5m", 0, 10 * STEP) == []
    assert (storage._decoded, storage._decoded_bytes) == ({}, 0)


async def test_the_cache_holds_a_bounded_number_of_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(object_storage, "DECODED_CACHE_BYTES", 3 * MONTH_5M * CANDLE_BYTES)
    storage = LocalFileStorage(tmp_path)
    count = 6 * MONTH_5M  # spans more months than the cache holds
    covered = [TimeRange(0, count * STEP)]
    await storage.save_bulk_entries("binance", "BTC/USDT", "5m", _candles(count), covered=covered)
    for _ in range(2):  # the second read finds some objects cached while others load
        stored = await storage.get_range("binance", "BTC/USDT", "5m", 0, count * STEP)
        assert len(stored) == count
    assert 0 < storage._decoded_bytes <= object_storage.DECODED_CACHE_BYTES
    assert storage._decoded_bytes == sum(entry[1].nbytes for entry in storage._decoded.values())
    assert 1 <= len(storage._decoded) < len(list(tmp_path.rglob("*.arrow")))


@pytest.mark.parametrize(
    ("timeframe", "start", "end", "listed"),
    [
        # two month objects: a conditional read each, no listing
        ("5m", 0, 59 * DAY, []),
        # day objects: only the folder holding three or more of them is listed
        ("1m", 29 * DAY, 61 * DAY, ["raw_data/binance/BTC-USDT/1m/1970/02/"]),
        # under the longest prefix its keys share: February 10 to 19
        ("1m", 40 * DAY, 50 * DAY, ["raw_data/binance/BTC-USDT/1m/1970/02/1"]),
        # more folders than reads run at once: one listing of all (1970 to 1973)
        ("1m", 0, 40 * 31 * DAY, ["raw_data/binance/BTC-USDT/1m/197"]),
    ],
)
async def test_a_read_lists_the_folders_that_hold_several_of_its_objects_narrowly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    timeframe: str,
    start: int,
    end: int,
    listed: list[str],
) -> None:
    storage = LocalFileStorage(tmp_path)
    candles = [Candle(t, 1.0, 1.0, 1.0, 1.0, 1.0) for t in range(start, end, 7 * DAY)]
    await storage.save_bulk_entries("binance", "BTC/USDT", timeframe, candles)
    prefixes: list[str] = []
    list_etags = storage._list_etags

    async def recorded(prefix: str) -> dict[str, str | None]:
        prefixes.append(prefix)
        return await list_etags(prefix)

    monkeypatch.setattr(storage, "_list_etags", recorded)
    assert await storage.get_range("binance", "BTC/USDT", timeframe, start, end) == candles
    assert prefixes == listed


async def test_a_load_in_flight_during_a_repair_does_not_keep_the_old_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sealed objects are served from the cache with no request: one the repair made stale
    # would be served until the repair marker's next check (an hour here).
    storage = LocalFileStorage(
        tmp_path, sealing=object_storage.SealingPolicy(seal_after_ms=0, recheck_seconds=3_600)
    )
    series = ("binance", "BTC/USDT", "5m")
    month = [TimeRange(0, MONTH_5M * STEP)]
    await storage.save_bulk_entries(*series, _candles(MONTH_5M), covered=month)
    read_object = storage._read_object_if_changed
    read, release = asyncio.Event(), asyncio.Event()

    async def held(key: str, etag: str | None) -> object:
        found = await read_object(key, etag)  # the object as it was before the repair
        if key.endswith(".arrow"):
            read.set()
            await release.wait()
        return found

    monkeypatch.setattr(storage, "_read_object_if_changed", held)
    reading = asyncio.ensure_future(storage.get_range(*series, 0, 10 * STEP))
    await read.wait()
    monkeypatch.setattr(storage, "_read_object_if_changed", read_object)
    repaired = _candles(MONTH_5M, price=2.0)
    await storage.replace_range(*series, 0, MONTH_5M * STEP, repaired, covered=month)
    release.set()
    assert [c.open for c in await reading] == [1.0] * 10  # begun before the repair
    assert [c.open for c in await storage.get_range(*series, 0, 10 * STEP)] == [2.0] * 10
