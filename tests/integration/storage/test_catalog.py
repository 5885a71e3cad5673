"""The series catalog (list_series) on both backends: what it reports, what a second request
costs, and that another instance's writes are never hidden by a summary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from cbtrade.models import Candle, TimeRange
from cbtrade.storage.implementations.azure_blob_storage import AzureBlobStorage
from cbtrade.storage.interfaces import SeriesSummary
from cbtrade.storage.object_storage import ObjectRawDataStorage
from cbtrade.storage.path_utility import OBJECT_SUFFIX

pytestmark = pytest.mark.azurite

EX = "cryptocom"
M5, H1 = 300_000, 3_600_000
SUMMARY_5M = "raw_data/cryptocom/BTC-USD/5m/summary.json"


def ms(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp() * 1000)


def candles(start: int, end: int, step: int = M5, *, skip: int | None = None) -> list[Candle]:
    return [Candle(t, 1.0, 2.0, 0.5, 1.5, 3.0) for t in range(start, end, step) if t != skip]


QUIET = ms(2024, 1, 25, 12)  # a covered 5m slot without a candle: no trades


async def fetched(
    storage: ObjectRawDataStorage,
    symbol: str,
    timeframe: str,
    start: int,
    end: int,
    *,
    covered_from: int | None = None,
    skip: int | None = None,
) -> None:
    """Save what a fetch of ``[covered_from or start, end)`` stores: candles from ``start``
    (but at ``skip``), the range covered."""
    step = H1 if timeframe == "1h" else M5
    await storage.save_bulk_entries(
        EX,
        symbol,
        timeframe,
        candles(start, end, step, skip=skip),
        covered=[TimeRange(start if covered_from is None else covered_from, end)],
    )


async def fill(storage: ObjectRawDataStorage) -> None:
    """BTC/USD 5m: fetched from 31 Dec (listed 1 Jan) to 10 Jan, and 20 Jan to 5 Feb with
    one quiet slot; 10 to 20 Jan never fetched. BTC/USD 1h: two days. ETH/USD 5m: a day.
    BTC/USD mark 5m: a day."""
    jan_1 = ms(2024, 1, 1)
    await fetched(storage, "BTC/USD", "5m", jan_1, ms(2024, 1, 10), covered_from=ms(2023, 12, 31))
    await fetched(storage, "BTC/USD", "5m", ms(2024, 1, 20), ms(2024, 2, 5), skip=QUIET)
    await fetched(storage, "BTC/USD", "1h", jan_1, ms(2024, 1, 3))
    await fetched(storage, "ETH/USD", "5m", jan_1, ms(2024, 1, 2))
    await fetched(storage, "BTC/USD@mark", "5m", jan_1, ms(2024, 1, 2))


EXPECTED = [
    SeriesSummary(
        EX,
        "BTC/USD",
        "5m",
        ms(2024, 1, 1),
        ms(2024, 2, 5) - M5,
        (ms(2024, 1, 10) - ms(2024, 1, 1)) // M5 + (ms(2024, 2, 5) - ms(2024, 1, 20)) // M5 - 1,
        [TimeRange(ms(2024, 1, 10), ms(2024, 1, 20))],
        1,
    ),
    SeriesSummary(EX, "BTC/USD", "1h", ms(2024, 1, 1), ms(2024, 1, 3) - H1, 48, [], 0),
    SeriesSummary(EX, "BTC/USD@mark", "5m", ms(2024, 1, 1), ms(2024, 1, 2) - M5, 288, [], 0),
    SeriesSummary(EX, "ETH/USD", "5m", ms(2024, 1, 1), ms(2024, 1, 2) - M5, 288, [], 0),
]


class DataReads:
    """Records the reads of data objects, and the objects summarised (decoded) afresh."""

    def __init__(self, storage: ObjectRawDataStorage, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads: list[str] = []
        self.other_reads: list[str] = []
        self.decoded: list[str] = []
        for name in ("_read_object", "_read_object_if_changed"):
            monkeypatch.setattr(storage, name, self._recorded(getattr(storage, name)))
        from cbtrade.storage import object_storage

        summarize = object_storage.summarize_object

        def recorded_summarize(etag: str, *args: Any) -> Any:
            self.decoded.append(etag)
            return summarize(etag, *args)

        monkeypatch.setattr(object_storage, "summarize_object", recorded_summarize)

    def _recorded(self, primitive: Any) -> Any:
        async def recorded(key: str, *args: Any) -> Any:
            (self.reads if key.endswith(OBJECT_SUFFIX) else self.other_reads).append(key)
            return await primitive(key, *args)

        return recorded


async def test_the_catalog_lists_every_series_with_its_life_and_holes(
    backend: ObjectRawDataStorage,
) -> None:
    await fill(backend)
    assert await backend.list_series(EX) == EXPECTED
    assert await backend.list_series(EX, "BTC/USD") == EXPECTED[:3]
    assert await backend.list_series(EX, "ETH/USD") == EXPECTED[3:]
    assert await backend.list_series(EX, "SOL/USD") == []
    assert await backend.list_series("kraken") == []


async def test_a_second_catalog_decodes_nothing_and_on_azure_reads_no_object(
    backend: ObjectRawDataStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(backend)
    assert await backend.list_series(EX) == EXPECTED
    spy = DataReads(backend, monkeypatch)
    assert await backend.list_series(EX) == EXPECTED
    assert spy.decoded == []
    if isinstance(backend, AzureBlobStorage):
        assert spy.reads == []  # the listing's ETags vouch for every summary entry
        spy.other_reads.clear()
        assert await backend.list_series(EX) == EXPECTED
        assert spy.other_reads == []  # and for the summaries read the last time
    else:
        # Local listings carry no ETags: each object is read (and hashed) to validate it.
        assert sorted(set(spy.reads)) == sorted(await backend._list_keys("raw_data/"))


async def test_another_instance_s_writes_are_seen_at_once(
    backend: ObjectRawDataStorage,
    other_writer: ObjectRawDataStorage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await fill(backend)
    assert await backend.list_series(EX, "ETH/USD") == EXPECTED[3:]
    # The newest object grows; an older one is repaired to hold fewer candles.
    await fetched(other_writer, "ETH/USD", "5m", ms(2024, 1, 2), ms(2024, 1, 3))
    spy = DataReads(backend, monkeypatch)
    [grown] = await backend.list_series(EX, "ETH/USD")
    assert (grown.last, grown.candles) == (ms(2024, 1, 3) - M5, 576)
    assert spy.decoded != []
    await other_writer.replace_range(
        EX,
        "ETH/USD",
        "5m",
        ms(2024, 1, 1),
        ms(2024, 1, 2),
        [],
        covered=[TimeRange(ms(2024, 1, 1), ms(2024, 1, 2))],
    )
    [repaired] = await backend.list_series(EX, "ETH/USD")
    assert (repaired.first, repaired.candles, repaired.missing_candles) == (ms(2024, 1, 2), 288, 0)


async def test_the_summary_is_no_data_object(backend: ObjectRawDataStorage) -> None:
    await fill(backend)
    keys = sorted(await backend._list_keys("raw_data/"))
    await backend.list_series(EX)
    found = await backend._read_object(SUMMARY_5M)
    assert found is not None
    assert sorted(orjson.loads(found[0])["objects"]) == [
        "2023/12.arrow",  # covered only: before the listing
        "2024/01.arrow",
        "2024/02.arrow",
    ]
    assert sorted(await backend._list_keys("raw_data/")) == keys
    assert await backend.list_coins(EX) == ["BTC/USD", "ETH/USD"]
    assert await backend.get_latest_timestamp(EX, "BTC/USD", "5m") == ms(2024, 2, 5) - M5
    assert (
        len(await backend.get_range(EX, "BTC/USD", "5m", 0, ms(2025, 1, 1))) == EXPECTED[0].candles
    )


async def test_an_unreadable_summary_is_rebuilt(backend: ObjectRawDataStorage) -> None:
    await fill(backend)
    await backend._write_object(SUMMARY_5M, b"\x00 not json", etag=None)
    assert await backend.list_series(EX, "BTC/USD") == EXPECTED[:3]
    found = await backend._read_object(SUMMARY_5M)
    assert found is not None
    assert orjson.loads(found[0])["format"] == 1
