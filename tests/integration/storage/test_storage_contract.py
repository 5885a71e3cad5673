"""One contract for every IRawDataStorage backend: LocalFileStorage on a temp dir and
AzureBlobStorage on Azurite. Plus the faults each backend must survive."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest

from cbtrade.errors import (
    InvalidInputError,
    InvalidPathComponentError,
    InvalidTimeframeError,
    StorageCorruptError,
    StorageError,
    StoragePermissionError,
    StorageUnavailableError,
)
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.implementations.azure_blob_storage import AzureBlobStorage
from cbtrade.storage.implementations.local_file_storage import LocalFileStorage
from cbtrade.storage.interfaces import IRawDataStorage, SeriesBounds
from cbtrade.storage.manager import StorageManagerImpl
from cbtrade.storage.object_storage import ObjectRawDataStorage
from tests.fixtures.azurite import AzuriteInstance, AzuriteInstanceFactory, connection_string
from tests.fixtures.stored_objects import read_stored_object

pytestmark = pytest.mark.azurite

REPO = Path(__file__).resolve().parents[3]
EX, SYM = "cryptocom", "BTC/USD"
M5, M1, H1 = 300_000, 60_000, 3_600_000
DAY = 86_400_000


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


T0 = ms(2024, 1, 1)


def series(start: int, count: int, step: int = M5, *, price: float = 1.0) -> list[Candle]:
    return [
        Candle(start + i * step, price + i, price + i + 1, price, price + 0.5, 10.0 + i)
        for i in range(count)
    ]


async def all_keys(storage: ObjectRawDataStorage) -> list[str]:
    return sorted(await storage._list_keys("raw_data/"))


class StoredSlice(NamedTuple):
    candles: list[Candle]
    covered: list[TimeRange]


async def stored_slice(
    storage: IRawDataStorage, exchange: str, symbol: str, timeframe: str, start: int, end: int
) -> StoredSlice:
    """``get_range_with_coverage`` with its candles as a list."""
    found = await storage.get_range_with_coverage(exchange, symbol, timeframe, start, end)
    return StoredSlice(found.candles.to_candles(), found.covered)


async def stored_object(storage: ObjectRawDataStorage, key: str) -> dict[str, Any]:
    found = await storage._read_object(key)
    assert found is not None, key
    return read_stored_object(found[0])


# -- 1.4 / 6.1: saving ----------------------------------------------------------------------


async def test_save_entry_for_a_new_coin(backend: ObjectRawDataStorage) -> None:
    [candle] = series(T0 + 7 * M5, 1)
    await backend.save_entry(EX, SYM, "5m", candle)
    assert await all_keys(backend) == ["raw_data/cryptocom/BTC-USD/5m/2024/01.arrow"]
    assert await backend.get_range(EX, SYM, "5m", T0, T0 + DAY) == [candle]
    assert await backend.check_coin_exists(EX, SYM, "5m") is True


async def test_save_bulk_entries_spreads_candles_over_period_objects(
    backend: ObjectRawDataStorage,
) -> None:
    # 5m: month objects, across a year boundary; 1m: day objects; 1h: year objects.
    five = series(ms(2023, 12, 31, 23), 24)
    one = series(ms(2024, 2, 28, 23, 58), 4, M1)
    hourly = series(ms(2024, 12, 31, 22), 4, H1)
    await backend.save_bulk_entries(EX, SYM, "5m", five)
    await backend.save_bulk_entries(EX, SYM, "1m", one)
    await backend.save_bulk_entries(EX, SYM, "1h", hourly)
    assert await all_keys(backend) == [
        "raw_data/cryptocom/BTC-USD/1h/2024.arrow",
        "raw_data/cryptocom/BTC-USD/1h/2025.arrow",
        "raw_data/cryptocom/BTC-USD/1m/2024/02/28.arrow",
        "raw_data/cryptocom/BTC-USD/1m/2024/02/29.arrow",
        "raw_data/cryptocom/BTC-USD/5m/2023/12.arrow",
        "raw_data/cryptocom/BTC-USD/5m/2024/01.arrow",
    ]
    dec = await stored_object(backend, "raw_data/cryptocom/BTC-USD/5m/2023/12.arrow")
    assert [row[0] for row in dec["candles"]] == [c.timestamp for c in five[:12]]
    assert await backend.get_range(EX, SYM, "5m", 0, ms(2030, 1, 1)) == five
    assert await backend.get_range(EX, SYM, "1m", ms(2024, 2, 29), ms(2024, 3, 1)) == one[2:]
    assert (
        await backend.get_range(EX, SYM, "1h", ms(2024, 12, 31, 23), ms(2025, 1, 1, 1))
        == (hourly[1:3])
    )


async def test_later_saves_replace_the_same_timestamp_and_keep_the_rest(
    backend: ObjectRawDataStorage,
) -> None:
    await backend.save_bulk_entries(EX, SYM, "5m", series(T0, 5))
    replacement = series(T0 + 2 * M5, 2, price=100.0)
    await backend.save_bulk_entries(EX, SYM, "5m", replacement)
    stored = await backend.get_range(EX, SYM, "5m", T0, T0 + DAY)
    assert stored == [*series(T0, 2), *replacement, series(T0, 5)[4]]


# -- get_range ------------------------------------------------------------------------------


async def test_get_range_is_sorted_whatever_the_save_order(backend: ObjectRawDataStorage) -> None:
    candles = series(ms(2024, 1, 31, 22), 48)  # across the Jan/Feb objects
    await backend.save_bulk_entries(EX, SYM, "5m", candles[30:])
    await backend.save_bulk_entries(EX, SYM, "5m", candles[:10])
    await backend.save_bulk_entries(EX, SYM, "5m", candles[10:30])
    assert await backend.get_range(EX, SYM, "5m", 0, ms(2025, 1, 1)) == candles


async def test_get_range_bounds_are_start_inclusive_end_exclusive(
    backend: ObjectRawDataStorage,
) -> None:
    candles = series(T0, 10)
    await backend.save_bulk_entries(EX, SYM, "5m", candles)
    assert await backend.get_range(EX, SYM, "5m", T0 + 2 * M5, T0 + 5 * M5) == candles[2:5]
    assert (
        await backend.get_range(EX, SYM, "5m", T0 + 2 * M5 + 1, T0 + 5 * M5 + 1) == (candles[3:6])
    )


@pytest.mark.parametrize(
    ("start", "end"),
    [(T0, T0), (T0 + DAY, T0), (ms(2024, 6, 1), ms(2024, 7, 1)), (-DAY, 0)],
)
async def test_get_range_with_no_data_is_empty(
    backend: ObjectRawDataStorage, start: int, end: int
) -> None:
    await backend.save_bulk_entries(EX, SYM, "5m", series(T0, 3))
    assert await backend.get_range(EX, SYM, "5m", start, end) == []
    assert await stored_slice(backend, EX, SYM, "5m", start, end) == ([], [])


# -- get_latest_timestamp, list_coins, check_coin_exists ------------------------------------


async def test_get_latest_timestamp(backend: ObjectRawDataStorage) -> None:
    assert await backend.get_latest_timestamp(EX, SYM, "5m") is None
    await backend.save_bulk_entries(EX, SYM, "5m", series(ms(2023, 11, 30), 3))
    await backend.save_bulk_entries(EX, SYM, "5m", series(T0, 3))
    # Newer objects that hold only coverage are skipped.
    await backend.save_bulk_entries(
        EX, SYM, "5m", [], covered=[TimeRange(ms(2024, 2, 1), ms(2024, 4, 1))]
    )
    assert await backend.get_latest_timestamp(EX, SYM, "5m") == T0 + 2 * M5
    assert await backend.get_latest_timestamp(EX, SYM, "1m") is None
    assert await backend.get_latest_timestamp(EX, "ETH/USD", "5m") is None


async def test_list_coins(backend: ObjectRawDataStorage) -> None:
    assert await backend.list_coins(EX) == []
    for exchange, symbol in [
        (EX, "ETH/USD"),
        (EX, "BTC/USDT:USDT"),
        (EX, "BTC/USD"),
        ("binance", "SOL/USDT"),
    ]:
        await backend.save_entry(exchange, symbol, "5m", series(T0, 1)[0])
    assert await backend.list_coins(EX) == ["BTC/USD", "BTC/USDT:USDT", "ETH/USD"]
    assert await backend.list_coins("binance") == ["SOL/USDT"]
    assert await backend.list_coins("kraken") == []


async def test_check_coin_exists(backend: ObjectRawDataStorage) -> None:
    assert await backend.check_coin_exists(EX, SYM) is False
    await backend.save_entry(EX, SYM, "1h", series(T0, 1, H1)[0])
    assert await backend.check_coin_exists(EX, SYM) is True
    assert await backend.check_coin_exists(EX, SYM, "1h") is True
    assert await backend.check_coin_exists(EX, SYM, "5m") is False
    assert await backend.check_coin_exists(EX, "BTC/USDT") is False  # not a prefix match
    assert await backend.check_coin_exists("binance", SYM) is False


# -- coverage -------------------------------------------------------------------------------


async def test_coverage_with_no_candles_is_recorded(backend: ObjectRawDataStorage) -> None:
    empty = TimeRange(ms(2023, 12, 1), ms(2023, 12, 2))
    await backend.save_bulk_entries(EX, SYM, "5m", [], covered=[empty])
    stored = await stored_slice(backend, EX, SYM, "5m", ms(2023, 1, 1), ms(2025, 1, 1))
    assert stored == ([], [empty])
    assert await backend.get_latest_timestamp(EX, SYM, "5m") is None


async def test_coverage_is_clipped_per_object_and_merged_on_read(
    backend: ObjectRawDataStorage,
) -> None:
    candles = series(ms(2024, 1, 31, 23), 24)
    covered = TimeRange(ms(2023, 12, 15), ms(2024, 2, 10))
    await backend.save_bulk_entries(EX, SYM, "5m", candles, covered=[covered])
    base = "raw_data/cryptocom/BTC-USD/5m"
    assert (await stored_object(backend, f"{base}/2023/12.arrow"))["covered"] == [
        [covered.start, ms(2024, 1, 1)]
    ]
    assert (await stored_object(backend, f"{base}/2024/01.arrow"))["covered"] == [
        [ms(2024, 1, 1), ms(2024, 2, 1)]
    ]
    assert (await stored_object(backend, f"{base}/2024/02.arrow"))["covered"] == [
        [ms(2024, 2, 1), covered.end]
    ]
    whole = await stored_slice(backend, EX, SYM, "5m", 0, ms(2025, 1, 1))
    assert whole == (candles, [covered])
    window = TimeRange(ms(2024, 1, 31, 23, 30), ms(2024, 2, 20))
    part = await stored_slice(backend, EX, SYM, "5m", *window)
    assert part == (candles[6:], [TimeRange(window.start, covered.end)])


async def test_coverage_accumulates_across_saves(backend: ObjectRawDataStorage) -> None:
    await backend.save_bulk_entries(EX, SYM, "1m", [], covered=[TimeRange(T0, T0 + 10 * M1)])
    await backend.save_bulk_entries(
        EX, SYM, "1m", [], covered=[TimeRange(T0 + 20 * M1, T0 + 30 * M1)]
    )
    await backend.save_bulk_entries(
        EX, SYM, "1m", series(T0 + 10 * M1, 2, M1), covered=[TimeRange(T0 + 10 * M1, T0 + 20 * M1)]
    )
    stored = await stored_slice(backend, EX, SYM, "1m", T0, T0 + DAY)
    assert stored.covered == [TimeRange(T0, T0 + 30 * M1)]
    assert len(stored.candles) == 2


async def test_a_year_of_5m_candles_round_trips_quickly(backend: ObjectRawDataStorage) -> None:
    candles = series(T0, 366 * 288)
    await backend.save_bulk_entries(EX, SYM, "5m", candles, covered=[TimeRange(T0, ms(2025, 1, 1))])
    assert len(await all_keys(backend)) == 12
    cpu = time.process_time()
    stored = await stored_slice(backend, EX, SYM, "5m", T0, ms(2025, 1, 1))
    cpu = time.process_time() - cpu
    assert stored == (candles, [TimeRange(T0, ms(2025, 1, 1))])
    assert cpu < 1.0


# -- the decoded cache -----------------------------------------------------------------------


async def test_a_wide_read_sees_what_another_instance_changed_since_it_cached(
    backend: ObjectRawDataStorage, other_writer: ObjectRawDataStorage
) -> None:
    # Day objects (1m), so the read lists its month folders; one day is absent at first.
    missing_day = ms(2024, 1, 5)
    candles = [
        c for c in series(T0, 10 * 1440, M1) if not missing_day <= c.timestamp < ms(2024, 1, 6)
    ]
    await backend.save_bulk_entries(EX, SYM, "1m", candles)
    first = await stored_slice(backend, EX, SYM, "1m", T0, ms(2024, 1, 11))
    assert first.candles == candles
    changed = series(ms(2024, 1, 3), 5, M1, price=7.0)
    added = series(missing_day, 5, M1, price=9.0)
    await other_writer.save_bulk_entries(EX, SYM, "1m", changed + added)
    await other_writer.save_bulk_entries(
        EX, SYM, "1m", [], covered=[TimeRange(T0, ms(2024, 1, 11))]
    )
    again = await stored_slice(backend, EX, SYM, "1m", T0, ms(2024, 1, 11))
    assert again.candles == sorted({c.timestamp: c for c in [*candles, *changed, *added]}.values())
    assert again.covered == [TimeRange(T0, ms(2024, 1, 11))]


async def test_a_wide_read_skips_objects_deleted_since_it_cached(
    backend: ObjectRawDataStorage,
) -> None:
    candles = series(T0, 4 * 1440, M1)
    await backend.save_bulk_entries(EX, SYM, "1m", candles)
    first = await stored_slice(backend, EX, SYM, "1m", T0, ms(2024, 1, 5))
    assert first.candles == candles
    deleted = "raw_data/cryptocom/BTC-USD/1m/2024/01/02.arrow"
    if isinstance(backend, LocalFileStorage):
        backend.root.joinpath(*deleted.split("/")).unlink()
    else:
        assert isinstance(backend, AzureBlobStorage)
        await backend._client.delete_blob(deleted)
    again = await stored_slice(backend, EX, SYM, "1m", T0, ms(2024, 1, 5))
    assert again.candles == [
        c for c in candles if not ms(2024, 1, 2) <= c.timestamp < ms(2024, 1, 3)
    ]
    assert deleted not in backend._decoded


async def test_azure_validates_a_wide_read_with_one_listing_instead_of_a_request_each(
    azurite: AzuriteInstance, azurite_container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (Local listings carry no ETags: each cached file is read to validate it.)
    backend = AzureBlobStorage(
        container=azurite_container, connection_string=azurite.connection_string
    )
    try:
        await backend.save_bulk_entries(EX, SYM, "5m", series(T0, 366 * 288))
        year = await stored_slice(backend, EX, SYM, "5m", T0, ms(2025, 1, 1))
        requests: list[str] = []
        for name in ("_read_object", "_read_object_if_changed", "_list_etags", "_list_keys"):
            monkeypatch.setattr(backend, name, _recorded(getattr(backend, name), requests))
        assert await stored_slice(backend, EX, SYM, "5m", T0, ms(2025, 1, 1)) == year
        assert requests == ["_list_etags raw_data/cryptocom/BTC-USD/5m/2024/"]
    finally:
        await backend.close()


async def test_listings_take_any_prefix_of_a_key(backend: ObjectRawDataStorage) -> None:
    """A read lists under the longest prefix its keys share, which may end inside a name."""
    await backend.save_bulk_entries(EX, SYM, "1m", series(ms(2024, 2, 1), 29 * 1440, step=60_000))
    folder = "raw_data/cryptocom/BTC-USD/1m/2024/02/"
    tens = await backend._list_keys(folder + "1")
    assert sorted(tens) == [f"{folder}{day}.arrow" for day in range(10, 20)]
    assert sorted(await backend._list_etags(folder + "2")) == [
        f"{folder}{day}.arrow" for day in range(20, 30)
    ]
    assert len(await backend._list_keys("raw_data/cryptocom/BTC-USD/1m/202")) == 29
    assert await backend._list_keys(folder + "3") == []
    week = await stored_slice(backend, EX, SYM, "1m", ms(2024, 2, 10), ms(2024, 2, 17))
    assert len(week.candles) == 7 * 1440


def _recorded(primitive: Any, requests: list[str]) -> Any:
    async def recorded(key: str, *args: Any, **kwargs: Any) -> Any:
        requests.append(f"{primitive.__name__} {key}")
        return await primitive(key, *args, **kwargs)

    return recorded


# -- concurrency ----------------------------------------------------------------------------


async def test_concurrent_writers_to_one_object_lose_nothing(
    backend: ObjectRawDataStorage,
) -> None:
    # 10 writers, each 12 candles overlapping its neighbours by 6, all in January's object.
    writers = 10
    batches = [series(T0 + i * 6 * M5, 12, price=float(i)) for i in range(writers)]
    await asyncio.gather(
        *(
            backend.save_bulk_entries(
                EX, SYM, "5m", batch, covered=[TimeRange(batch[0].timestamp, batch[-1].timestamp)]
            )
            for batch in batches
        )
    )
    stored = await stored_slice(backend, EX, SYM, "5m", T0, T0 + DAY)
    expected_timestamps = sorted({c.timestamp for batch in batches for c in batch})
    assert [c.timestamp for c in stored.candles] == expected_timestamps
    assert len(expected_timestamps) == (writers + 1) * 6
    owners = {c for batch in batches for c in batch}
    assert all(c in owners for c in stored.candles)  # every stored candle is one that was written
    assert stored.covered == [TimeRange(T0, batches[-1][-1].timestamp)]


_WRITER = """
import asyncio, sys, time
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.implementations.local_file_storage import LocalFileStorage

root, index, start_at = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
storage = LocalFileStorage(root, write_attempts=100)
T0, STEP = 1704067200000, 300000

async def main():
    while time.time() < start_at:
        await asyncio.sleep(0.005)
    for batch in range(6):
        first = T0 + (index * 30 + batch * 5) * STEP
        candles = [Candle(first + i * STEP, index, index, index, index, batch) for i in range(10)]
        await storage.save_bulk_entries(
            "cryptocom", "BTC/USD", "5m", candles, covered=[TimeRange(first, first + 10 * STEP)]
        )

asyncio.run(main())
"""


async def test_local_writers_in_several_processes_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "data"
    start_at = time.time() + 1.5
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(root), str(index), str(start_at)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        for index in range(4)
    ]
    assert [process.wait(timeout=60) for process in processes] == [0, 0, 0, 0]
    storage = LocalFileStorage(root)
    stored = await stored_slice(storage, EX, SYM, "5m", T0, T0 + DAY)
    # Writer i covered slots [30 i, 30 i + 35): the union is slots [0, 125).
    assert [c.timestamp for c in stored.candles] == [T0 + i * M5 for i in range(125)]
    assert stored.covered == [TimeRange(T0, T0 + 125 * M5)]


# -- series bounds --------------------------------------------------------------------------

BOUNDS_KEY = "raw_data/cryptocom/BTC-USD/5m/bounds.json"


async def test_series_bounds_round_trip_as_json_beside_the_series(
    backend: ObjectRawDataStorage,
) -> None:
    assert await backend.get_series_bounds(EX, SYM, "5m") == SeriesBounds()
    saved = await backend.save_series_bounds(EX, SYM, "5m", SeriesBounds(T0, T0))
    assert saved == SeriesBounds(T0, T0)
    assert await backend.get_series_bounds(EX, SYM, "5m") == SeriesBounds(T0, T0)
    assert await backend.get_series_bounds(EX, SYM, "1h") == SeriesBounds()
    found = await backend._read_object(BOUNDS_KEY)
    assert found is not None
    assert orjson.loads(found[0]) == {"empty_before": T0, "first_candle": T0, "empty_from": None}


async def test_series_bounds_merge_with_the_stored_record(backend: ObjectRawDataStorage) -> None:
    later = T0 + 10 * M5
    steps = [
        (SeriesBounds(T0), {}, SeriesBounds(T0)),
        (SeriesBounds(0, None, ms(2025, 1, 1)), {}, SeriesBounds(T0, None, ms(2025, 1, 1))),
        (SeriesBounds(T0 - M5), {}, SeriesBounds(T0, None, ms(2025, 1, 1))),  # never lowered
        (SeriesBounds(later, later), {}, SeriesBounds(later, later, ms(2025, 1, 1))),
        (SeriesBounds(0, None, ms(2025, 6, 1)), {}, SeriesBounds(later, later, ms(2025, 6, 1))),
        (SeriesBounds(), {"clear_empty_from": True}, SeriesBounds(later, later)),
    ]
    for bounds, options, merged in steps:
        assert await backend.save_series_bounds(EX, SYM, "5m", bounds, **options) == merged
        assert await backend.get_series_bounds(EX, SYM, "5m") == merged


async def test_contradicting_series_bounds_leave_the_stored_record(
    backend: ObjectRawDataStorage,
) -> None:
    await backend.save_series_bounds(EX, SYM, "5m", SeriesBounds(T0, T0))
    with pytest.raises(InvalidInputError, match="first_candle"):
        await backend.save_series_bounds(EX, SYM, "5m", SeriesBounds(T0 + M5))
    assert await backend.get_series_bounds(EX, SYM, "5m") == SeriesBounds(T0, T0)


async def test_series_bounds_are_not_data_objects(backend: ObjectRawDataStorage) -> None:
    await backend.save_series_bounds(EX, SYM, "5m", SeriesBounds(T0, T0))
    await backend.save_series_bounds(EX, "ETH/USD", "1h", SeriesBounds(0, None, T0))
    assert await all_keys(backend) == []
    assert await backend.list_coins(EX) == []
    assert await backend.check_coin_exists(EX, SYM) is False
    assert await backend.check_coin_exists(EX, SYM, "5m") is False
    assert await backend.get_latest_timestamp(EX, SYM, "5m") is None
    # Beside data objects: the listings and a wide read (folder listings) still skip it.
    candles = series(T0, 3 * 288)
    await backend.save_bulk_entries(EX, SYM, "5m", candles, covered=[TimeRange(T0, T0 + 3 * DAY)])
    await backend.save_bulk_entries(EX, SYM, "1m", series(T0, 3 * 1440, M1))
    await backend.save_series_bounds(EX, SYM, "1m", SeriesBounds(T0, T0))
    assert await all_keys(backend) == [
        "raw_data/cryptocom/BTC-USD/1m/2024/01/01.arrow",
        "raw_data/cryptocom/BTC-USD/1m/2024/01/02.arrow",
        "raw_data/cryptocom/BTC-USD/1m/2024/01/03.arrow",
        "raw_data/cryptocom/BTC-USD/5m/2024/01.arrow",
    ]
    assert await backend.list_coins(EX) == [SYM]
    assert await backend.get_latest_timestamp(EX, SYM, "5m") == candles[-1].timestamp
    assert (await stored_slice(backend, EX, SYM, "5m", T0, ms(2025, 1, 1))).candles == candles
    for _ in range(2):  # the second read validates cached objects by listing their folder
        assert len((await stored_slice(backend, EX, SYM, "1m", T0, T0 + 3 * DAY)).candles) == (
            3 * 1440
        )


async def test_concurrent_bounds_saves_lose_no_field(
    backend: ObjectRawDataStorage, other_writer: ObjectRawDataStorage
) -> None:
    # Two instances save different fields at once; whatever the interleaving, all survive.
    first = T0 + 20 * M5
    saves = [
        *(
            (backend if i % 2 else other_writer).save_series_bounds(
                EX, SYM, "5m", SeriesBounds(T0 + i * M5)
            )
            for i in range(8)
        ),
        other_writer.save_series_bounds(EX, SYM, "5m", SeriesBounds(0, None, ms(2025, 1, 1))),
        backend.save_series_bounds(EX, SYM, "5m", SeriesBounds(first, first)),
    ]
    await asyncio.gather(*saves)
    assert await backend.get_series_bounds(EX, SYM, "5m") == SeriesBounds(
        first, first, ms(2025, 1, 1)
    )


@pytest.mark.parametrize(
    "data",
    [
        b"{not json",
        b"[1, 2, 3]",
        b'{"empty_before": 1}',
        b'{"empty_before": "1", "first_candle": null, "empty_from": null}',
        b'{"empty_before": null, "first_candle": null, "empty_from": null}',
        b'{"empty_before": 600000, "first_candle": 300000, "empty_from": null}',
    ],
)
async def test_a_corrupt_bounds_record_is_reported(
    backend: ObjectRawDataStorage, data: bytes
) -> None:
    await backend._write_object(BOUNDS_KEY, data, etag=None)
    with pytest.raises(StorageCorruptError, match="bounds"):
        await backend.get_series_bounds(EX, SYM, "5m")
    with pytest.raises(StorageCorruptError, match="bounds"):
        await backend.save_series_bounds(EX, SYM, "5m", SeriesBounds(T0))
    with pytest.raises(StorageCorruptError, match="bounds"):
        await backend.replace_range(EX, SYM, "5m", T0, T0 + DAY, [], covered=[])
    assert await all_keys(backend) == []


# -- replace_range (operators' repair) -------------------------------------------------------


async def test_replace_range_drops_candles_and_coverage_only_inside_the_range(
    backend: ObjectRawDataStorage,
) -> None:
    old = series(T0, 20)
    await backend.save_bulk_entries(EX, SYM, "5m", old, covered=[TimeRange(T0, T0 + 20 * M5)])
    start, end = T0 + 5 * M5, T0 + 10 * M5
    new = series(T0 + 6 * M5, 2, price=100.0)
    removed = await backend.replace_range(
        EX, SYM, "5m", start, end, new, covered=[TimeRange(T0 + 5 * M5, T0 + 8 * M5)]
    )
    assert removed == 5
    stored = await stored_slice(backend, EX, SYM, "5m", 0, ms(2025, 1, 1))
    assert stored.candles == [*old[:5], *new, *old[10:]]
    # The coverage between 8 and 10 was dropped: that stretch is fetched again.
    assert stored.covered == [TimeRange(T0, T0 + 8 * M5), TimeRange(end, T0 + 20 * M5)]
    assert await all_keys(backend) == ["raw_data/cryptocom/BTC-USD/5m/2024/01.arrow"]


@pytest.mark.parametrize(
    ("timeframe", "step", "first", "expected_keys"),
    [
        (
            "1m",
            M1,
            ms(2024, 1, 1, 22),
            [f"raw_data/cryptocom/BTC-USD/1m/2024/01/0{day}.arrow" for day in (1, 2, 3)],
        ),
        (
            "5m",
            M5,
            ms(2023, 12, 31, 22),
            ["raw_data/cryptocom/BTC-USD/5m/2023/12.arrow"]
            + [f"raw_data/cryptocom/BTC-USD/5m/2024/0{month}.arrow" for month in (1, 2)],
        ),
    ],
)
async def test_replace_range_across_object_boundaries(
    backend: ObjectRawDataStorage, timeframe: str, step: int, first: int, expected_keys: list[str]
) -> None:
    # Stored: the last two hours of the first object to the first two of the third.
    last = expected_keys[-1]
    end_of_stored = backend._paths.parse_path(last).period.start + 2 * 3_600_000
    old = series(first, (end_of_stored - first) // step, step)
    everything = TimeRange(first, end_of_stored)
    await backend.save_bulk_entries(EX, SYM, timeframe, old, covered=[everything])
    start, end = first + 3_600_000, end_of_stored - 3_600_000
    new = series(start, 3, step * 7, price=50.0)
    removed = await backend.replace_range(
        EX, SYM, timeframe, start, end, new, covered=[TimeRange(start, end)]
    )
    assert removed == (end - start) // step
    stored = await stored_slice(backend, EX, SYM, timeframe, 0, ms(2025, 1, 1))
    assert stored.candles == [
        *[c for c in old if c.timestamp < start],
        *new,
        *[c for c in old if c.timestamp >= end],
    ]
    assert stored.covered == [everything]
    assert await all_keys(backend) == expected_keys


async def test_replace_range_with_no_candles_records_that_the_exchange_has_none(
    backend: ObjectRawDataStorage,
) -> None:
    old = series(T0, 288)
    await backend.save_bulk_entries(EX, SYM, "5m", old, covered=[TimeRange(T0, T0 + DAY)])
    start, end = T0 + 6 * 12 * M5, T0 + 12 * 12 * M5
    removed = await backend.replace_range(
        EX, SYM, "5m", start, end, [], covered=[TimeRange(start - DAY, end + DAY)]
    )
    assert removed == 72
    inside = await stored_slice(backend, EX, SYM, "5m", start, end)
    assert inside == ([], [TimeRange(start, end)])  # covered, clipped to the range: not refetched
    whole = await stored_slice(backend, EX, SYM, "5m", 0, ms(2025, 1, 1))
    assert whole.covered == [TimeRange(T0, T0 + DAY)]
    assert len(whole.candles) == 288 - 72


async def test_replace_range_where_nothing_is_stored_creates_only_what_it_covers(
    backend: ObjectRawDataStorage,
) -> None:
    assert await backend.replace_range(EX, SYM, "5m", T0, ms(2024, 4, 1), [], covered=[]) == 0
    assert await all_keys(backend) == []
    march = TimeRange(ms(2024, 3, 1), ms(2024, 4, 1))
    assert await backend.replace_range(EX, SYM, "5m", T0, march.end, [], covered=[march]) == 0
    assert await all_keys(backend) == ["raw_data/cryptocom/BTC-USD/5m/2024/03.arrow"]
    assert await backend._read_object(BOUNDS_KEY) is None


async def test_candles_outside_a_replaced_range_are_rejected_and_nothing_changes(
    backend: ObjectRawDataStorage,
) -> None:
    manager = StorageManagerImpl(backend)
    old = series(T0, 12)
    await manager.save_bulk_entries(EX, SYM, "5m", old, covered=[TimeRange(T0, T0 + 12 * M5)])
    for outside in (T0 + 2 * M5, T0 + 6 * M5):
        with pytest.raises(InvalidInputError, match="outside the replaced range"):
            await manager.replace_range(
                EX,
                SYM,
                "5m",
                T0 + 3 * M5,
                T0 + 6 * M5,
                series(outside, 1, price=9.0),
                covered=[TimeRange(T0 + 3 * M5, T0 + 6 * M5)],
            )
    assert await stored_slice(manager, EX, SYM, "5m", T0, T0 + DAY) == (
        old,
        [TimeRange(T0, T0 + 12 * M5)],
    )


async def test_replace_range_before_the_bounds_opens_them(backend: ObjectRawDataStorage) -> None:
    listed, delisted = ms(2024, 3, 1), ms(2024, 9, 1)
    await backend.save_series_bounds(EX, SYM, "5m", SeriesBounds(listed, listed, delisted))
    # Inside the bounds: they stay.
    await backend.replace_range(EX, SYM, "5m", listed, listed + DAY, [], covered=[])
    assert await backend.get_series_bounds(EX, SYM, "5m") == SeriesBounds(listed, listed, delisted)
    # Reaching before empty_before: lowered to the range's start, the first candle unknown.
    await backend.replace_range(
        EX, SYM, "5m", ms(2024, 2, 1), listed + DAY, series(ms(2024, 2, 20), 1), covered=[]
    )
    assert await backend.get_series_bounds(EX, SYM, "5m") == SeriesBounds(
        ms(2024, 2, 1), None, delisted
    )
    # Reaching past empty_from: cleared.
    await backend.replace_range(EX, SYM, "5m", delisted - DAY, delisted + M5, [], covered=[])
    assert await backend.get_series_bounds(EX, SYM, "5m") == SeriesBounds(ms(2024, 2, 1))


async def test_a_save_racing_a_replace_on_the_same_object_loses_nothing_outside_the_range(
    backend: ObjectRawDataStorage, other_writer: ObjectRawDataStorage
) -> None:
    # All in January's object: writers save around the range while a repair replaces it.
    start, end = T0 + 100 * M5, T0 + 200 * M5
    await backend.save_bulk_entries(EX, SYM, "5m", series(T0, 300))
    before = [series(T0 + i * 10 * M5, 10, price=float(i)) for i in range(10)]
    after = [series(end + i * 10 * M5, 10, price=float(i)) for i in range(10)]
    new = series(start, 100, price=500.0)
    removed = await asyncio.gather(
        *(
            (backend if i % 2 else other_writer).save_bulk_entries(
                EX,
                SYM,
                "5m",
                batch,
                covered=[TimeRange(batch[0].timestamp, batch[-1].timestamp + M5)],
            )
            for i, batch in enumerate(before + after)
        ),
        backend.replace_range(EX, SYM, "5m", start, end, new, covered=[TimeRange(start, end)]),
    )
    assert removed[-1] == 100
    stored = await stored_slice(other_writer, EX, SYM, "5m", T0, ms(2024, 2, 1))
    assert stored.candles == [*(c for b in before for c in b), *new, *(c for b in after for c in b)]
    assert stored.covered == [TimeRange(T0, T0 + 300 * M5)]


# -- faults ---------------------------------------------------------------------------------


async def test_azurite_stopped_mid_test_gives_a_typed_error_quickly(
    start_azurite: AzuriteInstanceFactory,
) -> None:
    private = start_azurite()
    storage = AzureBlobStorage(
        container="faults",
        connection_string=private.connection_string,
        timeout_seconds=5,
        retry_total=1,
    )
    try:
        await storage.save_bulk_entries(EX, SYM, "5m", series(T0, 3))
        assert len(await storage.get_range(EX, SYM, "5m", T0, T0 + DAY)) == 3
        private.stop()
        for operation in (
            storage.get_range(EX, SYM, "5m", T0, T0 + DAY),
            storage.save_bulk_entries(EX, SYM, "5m", series(T0 + DAY, 1)),
            storage.check_health(),
        ):
            began = time.monotonic()
            with pytest.raises(StorageUnavailableError):
                await operation
            assert time.monotonic() - began < 6
    finally:
        await storage.close()


_CRASHER = """
import asyncio, os, sys
from cbtrade.models import Candle
from cbtrade.storage.implementations.local_file_storage import LocalFileStorage

os.replace = lambda *args, **kwargs: os._exit(17)  # die between the temp write and the rename
asyncio.run(LocalFileStorage(sys.argv[1]).save_entry(
    "cryptocom", "BTC/USD", "5m", Candle(1704067200000 + 3600000, 9, 9, 9, 9, 9)))
"""


async def test_a_crash_between_temp_write_and_replace_leaves_the_old_object(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    storage = LocalFileStorage(root)
    original = series(T0, 3)
    await storage.save_bulk_entries(EX, SYM, "5m", original)
    folder = root / "raw_data/cryptocom/BTC-USD/5m/2024"
    before = (folder / "01.arrow").read_bytes()

    crashed = subprocess.run(
        [sys.executable, "-c", _CRASHER, str(root)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
        timeout=60,
    )
    assert crashed.returncode == 17
    temps = [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 1  # the crash happened after the temp file was written
    assert (folder / "01.arrow").read_bytes() == before
    assert await storage.get_range(EX, SYM, "5m", T0, T0 + DAY) == original
    assert await storage._list_keys("raw_data/") == ["raw_data/cryptocom/BTC-USD/5m/2024/01.arrow"]
    # The store keeps working after the crash.
    await storage.save_entry(EX, SYM, "5m", series(T0 + 12 * M5, 1)[0])
    assert len(await storage.get_range(EX, SYM, "5m", T0, T0 + DAY)) == 4


@contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block as an unprivileged user; the tests may run as root, which chmod can't stop."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture(params=["local", "azure"])
async def denied_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ObjectRawDataStorage]:
    """A backend whose store refuses access: a folder we may not enter, or a wrong key."""
    storage: ObjectRawDataStorage
    if request.param == "local":
        root = tmp_path / "locked"
        root.mkdir(mode=0o700)
        if os.geteuid() != 0:
            root.chmod(0)
        storage = LocalFileStorage(root / "data")
    else:
        azurite: AzuriteInstance = request.getfixturevalue("azurite")
        wrong_key = "d3Jvbmcga2V5IGZvciB0aGUgZW11bGF0b3I="
        storage = AzureBlobStorage(
            container=request.getfixturevalue("azurite_container"),
            connection_string=connection_string(azurite.port, account_key=wrong_key),
            timeout_seconds=10,
        )
    yield storage
    await storage.close()
    if request.param == "local":
        (tmp_path / "locked").chmod(0o700)


async def test_permission_denied_is_a_typed_error(denied_backend: ObjectRawDataStorage) -> None:
    with unprivileged():
        with pytest.raises(StoragePermissionError):
            await denied_backend.save_entry(EX, SYM, "5m", series(T0, 1)[0])
        with pytest.raises(StoragePermissionError):
            await denied_backend.get_range(EX, SYM, "5m", T0, T0 + DAY)
        with pytest.raises(StoragePermissionError):
            await denied_backend.check_health()


async def test_a_corrupt_object_is_reported(backend: ObjectRawDataStorage) -> None:
    key = "raw_data/cryptocom/BTC-USD/5m/2024/01.arrow"
    await backend._write_object(key, b'{"format": 1, "candles": [[1, 2', etag=None)
    with pytest.raises(StorageCorruptError, match="BTC-USD"):
        await backend.get_range(EX, SYM, "5m", T0, T0 + DAY)
    with pytest.raises(StorageCorruptError):
        await backend.get_latest_timestamp(EX, SYM, "5m")
    with pytest.raises(StorageCorruptError):
        await backend.save_entry(EX, SYM, "5m", series(T0, 1)[0])


async def test_check_health_passes_on_a_working_store(backend: ObjectRawDataStorage) -> None:
    await backend.check_health()
    assert await all_keys(backend) == []


# -- bad input ------------------------------------------------------------------------------

BAD_COMPONENTS = [
    ("", SYM, "5m", InvalidPathComponentError),
    ("Cryptocom", SYM, "5m", InvalidPathComponentError),
    ("crypto-com", SYM, "5m", InvalidPathComponentError),
    ("x" * 33, SYM, "5m", InvalidPathComponentError),
    ("../etc", SYM, "5m", InvalidPathComponentError),
    (EX, "", "5m", InvalidPathComponentError),
    (EX, "B" * 65, "5m", InvalidPathComponentError),
    (EX, "BTC\x00/USD", "5m", InvalidPathComponentError),
    (EX, "BTC\n/USD", "5m", InvalidPathComponentError),
    (EX, "BTC /USD", "5m", InvalidPathComponentError),
    (EX, "../../etc/passwd", "5m", InvalidPathComponentError),
    (EX, "BTC\\USD", "5m", InvalidPathComponentError),
    (EX, ".hidden", "5m", InvalidPathComponentError),
    (EX, "BTC%2F", "5m", InvalidPathComponentError),
    (EX, "BTC*", "5m", InvalidPathComponentError),
    (EX, SYM, "7m", InvalidTimeframeError),
    (EX, SYM, "", InvalidTimeframeError),
    (EX, SYM, "../5m", InvalidTimeframeError),
]


@pytest.mark.parametrize(("exchange", "symbol", "timeframe", "error"), BAD_COMPONENTS)
async def test_bad_path_components_are_rejected_and_nothing_is_written(
    backend: ObjectRawDataStorage,
    exchange: str,
    symbol: str,
    timeframe: str,
    error: type[StorageError],
) -> None:
    manager = StorageManagerImpl(backend)
    candle = series(T0, 1)[0]
    for storage in (backend, manager):
        with pytest.raises(error):
            await storage.save_entry(exchange, symbol, timeframe, candle)
        with pytest.raises(error):
            await storage.save_bulk_entries(exchange, symbol, timeframe, [])
        with pytest.raises(error):
            await storage.get_range(exchange, symbol, timeframe, T0, T0 + DAY)
        with pytest.raises(error):
            await storage.get_latest_timestamp(exchange, symbol, timeframe)
        with pytest.raises(error):
            await storage.check_coin_exists(exchange, symbol, timeframe)
    assert await all_keys(backend) == []


# Service documents: small JSON records beside the candles (jobs, shared rate budgets).


async def test_documents_are_created_updated_and_listed(backend: ObjectRawDataStorage) -> None:
    assert await backend.get_document("jobs/a1/job") is None
    created = await backend.update_document("jobs/a1/job", lambda found: {"n": 1})
    assert created == {"n": 1}
    updated = await backend.update_document(
        "jobs/a1/job", lambda found: {"n": (found or {})["n"] + 1}
    )
    assert updated == {"n": 2}
    await backend.update_document("jobs/a1/series/0", lambda found: {"s": 0})
    await backend.update_document("jobs/b2/job", lambda found: {"n": 9})
    assert await backend.get_document("jobs/a1/job") == {"n": 2}
    assert await backend.list_documents("jobs/a1") == {
        "jobs/a1/job": {"n": 2},
        "jobs/a1/series/0": {"s": 0},
    }
    assert await backend.list_documents("jobs/none") == {}
    # Documents are not series: they list no coins and hold no candles.
    assert await backend.list_coins("jobs") == []


async def test_a_document_change_that_returns_the_stored_one_writes_nothing(
    backend: ObjectRawDataStorage,
) -> None:
    assert await backend.update_document("d", lambda found: None) is None
    assert await backend.get_document("d") is None
    await backend.update_document("d", lambda found: {"v": 1})
    assert await backend.update_document("d", lambda found: found) == {"v": 1}


async def test_concurrent_document_updates_lose_no_increment(
    backend: ObjectRawDataStorage, other_writer: ObjectRawDataStorage
) -> None:
    def increment(found: dict[str, Any] | None) -> dict[str, Any]:
        return {"count": (found or {"count": 0})["count"] + 1}

    await asyncio.gather(
        *(
            writer.update_document("counter", increment)
            for _ in range(10)
            for writer in (backend, other_writer)
        )
    )
    assert await backend.get_document("counter") == {"count": 20}


@pytest.mark.parametrize("name", ["", "/a", "a/", "A", "a//b", "../x", "a b", "-a", "a/" * 9 + "a"])
async def test_bad_document_names_are_rejected(backend: ObjectRawDataStorage, name: str) -> None:
    with pytest.raises(InvalidPathComponentError):
        await backend.update_document(name, lambda found: {"x": 1})
    with pytest.raises(InvalidPathComponentError):
        await backend.get_document(name)
