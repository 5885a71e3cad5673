"""The series catalog: per-object summaries reused while their ETags hold, and the series
entries made from them (cbtrade.storage.catalog, ObjectRawDataStorage.list_series)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from cbtrade.candle_table import CandleTable
from cbtrade.models import Candle, TimeRange
from cbtrade.storage import object_storage
from cbtrade.storage.catalog import (
    ObjectSummary,
    decode_summary,
    encode_summary,
    summarize_object,
    summarize_series,
)
from cbtrade.storage.interfaces import SeriesBounds, SeriesSummary
from cbtrade.storage.object_storage import ObjectRawDataStorage, PreconditionFailedError
from cbtrade.storage.path_utility import OBJECT_SUFFIX

M5 = 300_000
DAY = 86_400_000
JAN, FEB, MAR = 0, 31 * DAY, 59 * DAY  # 1970's month objects of 5m series
EX, SYM = "binance", "BTC/USDT"
PREFIX = "raw_data/binance/BTC-USDT/5m/"
SUMMARY = PREFIX + "summary.json"


class MemoryStorage(ObjectRawDataStorage):
    """Objects in a dict, each write a new ETag; listings carry ETags (as Azure's do) unless
    ``listing_etags`` is False (as local files'). Counts the reads of data objects."""

    def __init__(self, *, listing_etags: bool = True) -> None:
        super().__init__()
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.listing_etags = listing_etags
        self.data_reads: list[str] = []
        self.other_reads: list[str] = []
        self.before_write: list[str] = []
        """Keys whose next write another writer beats (it changes the object first)."""
        self._etags = itertools.count(1)

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = (data, f'"{next(self._etags)}"')

    async def _read_object(self, key: str) -> tuple[bytes, str] | None:
        (self.data_reads if key.endswith(OBJECT_SUFFIX) else self.other_reads).append(key)
        return self.objects.get(key)

    async def _write_object(self, key: str, data: bytes, *, etag: str | None) -> None:
        if key in self.before_write:
            self.before_write.remove(key)
            self.put(key, b'{"written": "by another instance"}')
        current = self.objects.get(key)
        if (None if current is None else current[1]) != etag:
            raise PreconditionFailedError(key)
        self.put(key, data)

    async def _list_keys(
        self, prefix: str, *, limit: int | None = None, suffix: str = OBJECT_SUFFIX
    ) -> list[str]:
        keys = [k for k in self.objects if k.startswith(prefix) and k.endswith(suffix)]
        return keys[:limit]

    async def _list_etags(
        self, prefix: str, *, suffixes: tuple[str, ...] = (OBJECT_SUFFIX,)
    ) -> dict[str, str | None]:
        if not self.listing_etags:
            return await super()._list_etags(prefix, suffixes=suffixes)
        return {
            k: etag
            for k, (_, etag) in self.objects.items()
            if k.startswith(prefix) and k.endswith(suffixes)
        }

    async def _list_child_names(self, prefix: str) -> list[str]:
        raise NotImplementedError

    async def check_health(self) -> None:
        """Always healthy."""

    async def close(self) -> None:
        """Nothing to close."""


def candles(start: int, count: int, step: int = M5) -> list[Candle]:
    return [Candle(start + i * step, 1.0, 2.0, 0.5, 1.5, 10.0) for i in range(count)]


async def fill(
    storage: ObjectRawDataStorage, start: int, count: int, *, covered_from: int | None = None
) -> None:
    """``count`` candles from ``start``, covered from ``covered_from`` (default ``start``)."""
    begin = start if covered_from is None else covered_from
    await storage.save_bulk_entries(
        EX, SYM, "5m", candles(start, count), covered=[TimeRange(begin, start + count * M5)]
    )


# -- the summary logic ------------------------------------------------------------------------


def test_an_object_summary_counts_covered_slots_without_a_candle() -> None:
    table = CandleTable.from_candles([*candles(0, 3), *candles(5 * M5, 2)])
    summary = summarize_object('"e"', table, [TimeRange(0, 10 * M5)], M5)
    assert summary == ObjectSummary('"e"', 5, 0, 6 * M5, [TimeRange(0, 10 * M5)], 5)


def test_a_series_entry_reports_holes_inside_its_life_only() -> None:
    # January: covered from 1 Jan, candles from the 2nd (before the listing: not missing),
    # one quiet slot on the 3rd; nothing fetched from the 10th to 1 Feb; February full.
    quiet = 2 * DAY + 5 * M5
    jan = CandleTable.from_candles(
        [c for c in candles(DAY, (9 * DAY - DAY) // M5) if c.timestamp != quiet]
    )
    feb = CandleTable.from_candles(candles(FEB, 100))
    objects = [
        summarize_object('"1"', jan, [TimeRange(0, 9 * DAY)], M5),
        summarize_object('"2"', feb, [TimeRange(FEB, FEB + 100 * M5)], M5),
    ]
    entry = summarize_series(EX, SYM, "5m", M5, objects)
    assert entry == SeriesSummary(
        EX, SYM, "5m", DAY, FEB + 99 * M5, len(jan) + 100, [TimeRange(9 * DAY, FEB)], 1
    )


def test_a_series_without_candles_has_no_life() -> None:
    empty = summarize_object('"1"', CandleTable.empty(), [TimeRange(0, DAY)], M5)
    assert summarize_series(EX, SYM, "5m", M5, [empty]) == SeriesSummary(
        EX, SYM, "5m", None, None, 0, [], 0
    )


def test_a_summary_document_round_trips_and_a_bad_one_is_ignored() -> None:
    entry = ObjectSummary('"7"', 3, 0, 2 * M5, [TimeRange(0, 3 * M5)], 0)
    assert decode_summary(SUMMARY, encode_summary({"1970/01.arrow": entry})) == {
        "1970/01.arrow": entry
    }
    for bad in (b"[]", b"{", b'{"format": 99, "objects": {}}', b'{"format": 1, "objects": 3}'):
        assert decode_summary(SUMMARY, bad) == {}


# -- list_series over an object store ---------------------------------------------------------


async def test_a_second_catalog_reads_no_data_object_and_writes_nothing() -> None:
    storage = MemoryStorage()
    await fill(storage, JAN, 10)
    await fill(storage, FEB, 10)
    storage.data_reads.clear()
    first = await storage.list_series(EX)
    assert sorted(storage.data_reads) == [PREFIX + "1970/01.arrow", PREFIX + "1970/02.arrow"]
    summary_etag = storage.objects[SUMMARY][1]
    storage.data_reads.clear()
    assert await storage.list_series(EX) == first
    assert storage.data_reads == []
    assert storage.objects[SUMMARY][1] == summary_etag
    assert first == [
        SeriesSummary(EX, SYM, "5m", JAN, FEB + 9 * M5, 20, [TimeRange(10 * M5, FEB)], 0)
    ]


async def test_a_kept_summary_is_not_read_while_the_listing_shows_its_etag() -> None:
    storage = MemoryStorage()
    await fill(storage, JAN, 10)
    first = await storage.list_series(EX)  # writes the summary
    assert await storage.list_series(EX) == first  # reads it, once, and keeps it
    storage.other_reads.clear()
    storage.data_reads.clear()
    assert await storage.list_series(EX) == first
    assert (storage.other_reads, storage.data_reads) == ([], [])
    storage.put(SUMMARY, encode_summary({}))  # another instance's, say
    assert await storage.list_series(EX) == first
    assert (storage.other_reads, storage.data_reads) == ([SUMMARY], [PREFIX + "1970/01.arrow"])


async def test_a_changed_object_is_read_again_and_only_it() -> None:
    storage = MemoryStorage()
    await fill(storage, JAN, 10)
    await fill(storage, FEB, 10)
    await storage.list_series(EX)
    storage._decoded.clear()  # as another instance, which wrote nothing it decoded
    await fill(storage, FEB + 10 * M5, 5)  # the newest object grows
    storage.data_reads.clear()
    [entry] = await storage.list_series(EX)
    assert storage.data_reads == [PREFIX + "1970/02.arrow"]
    assert (entry.last, entry.candles) == (FEB + 14 * M5, 25)


async def test_an_object_held_decoded_at_its_listed_etag_is_not_read() -> None:
    storage = MemoryStorage()
    await fill(storage, JAN, 10)
    await storage.get_range(EX, SYM, "5m", JAN, FEB)  # decoded and cached
    storage.data_reads.clear()
    [entry] = await storage.list_series(EX)
    assert storage.data_reads == []
    assert entry.candles == 10


async def test_a_vanished_object_drops_out() -> None:
    storage = MemoryStorage()
    await fill(storage, JAN, 10)
    await fill(storage, MAR, 10)
    await storage.list_series(EX)
    del storage.objects[PREFIX + "1970/01.arrow"]
    [entry] = await storage.list_series(EX)
    assert (entry.first, entry.candles, entry.not_covered) == (MAR, 10, [])
    assert list(decode_summary(SUMMARY, storage.objects[SUMMARY][0])) == ["1970/03.arrow"]


async def test_an_object_deleted_between_listing_and_read_drops_out() -> None:
    storage = MemoryStorage(listing_etags=False)
    await fill(storage, JAN, 10)
    await fill(storage, MAR, 10)
    list_etags = storage._list_etags

    async def listed_then_deleted(prefix: str, **options: Any) -> dict[str, str | None]:
        listed = await list_etags(prefix, **options)
        del storage.objects[PREFIX + "1970/03.arrow"]
        return listed

    storage._list_etags = listed_then_deleted  # type: ignore[method-assign]
    [entry] = await storage.list_series(EX)
    assert (entry.last, entry.candles) == (9 * M5, 10)


async def test_a_writer_racing_the_summary_write_loses_nothing() -> None:
    storage = MemoryStorage()
    await fill(storage, JAN, 10)
    storage.before_write.append(SUMMARY)  # another catalog request writes it first
    [entry] = await storage.list_series(EX)
    assert entry.candles == 10  # the answer stands; the summary is the other writer's
    assert storage.objects[SUMMARY][0] == b'{"written": "by another instance"}'
    storage.data_reads.clear()
    [again] = await storage.list_series(EX)  # the unreadable summary is rebuilt
    assert again == entry
    assert storage.data_reads == [PREFIX + "1970/01.arrow"]
    assert list(decode_summary(SUMMARY, storage.objects[SUMMARY][0])) == ["1970/01.arrow"]


async def test_an_object_written_after_the_listing_is_summarised_as_read() -> None:
    storage = MemoryStorage()
    await fill(storage, JAN, 10)
    list_etags = storage._list_etags

    async def listed_then_written(prefix: str, **options: Any) -> dict[str, str | None]:
        listed = await list_etags(prefix, **options)
        await fill(storage, JAN + 10 * M5, 5)
        return listed

    storage._list_etags = listed_then_written  # type: ignore[method-assign]
    [entry] = await storage.list_series(EX)
    assert entry.candles == 15
    stored = decode_summary(SUMMARY, storage.objects[SUMMARY][0])["1970/01.arrow"]
    assert stored.etag == storage.objects[PREFIX + "1970/01.arrow"][1]  # the version read


async def test_without_listed_etags_objects_are_validated_by_a_read_but_not_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = MemoryStorage(listing_etags=False)
    await fill(storage, JAN, 10)
    first = await storage.list_series(EX)
    summary_etag = storage.objects[SUMMARY][1]
    storage.data_reads.clear()
    decoded: list[str] = []
    monkeypatch.setattr(
        "cbtrade.storage.object_storage.summarize_object",
        lambda *args: decoded.append(args[0]),
    )
    assert await storage.list_series(EX) == first
    assert storage.data_reads == [PREFIX + "1970/01.arrow"]
    assert decoded == []
    assert storage.objects[SUMMARY][1] == summary_etag
    await fill(storage, JAN + 10 * M5, 1)
    monkeypatch.undo()
    [entry] = await storage.list_series(EX)
    assert entry.candles == 11


async def test_the_catalog_filters_by_symbol_and_ignores_other_keys() -> None:
    storage = MemoryStorage()
    await fill(storage, JAN, 10)
    await storage.save_bulk_entries(EX, "BTC/USDC", "5m", candles(JAN, 3))
    await storage.save_bulk_entries(EX, "BTC/USDT", "1h", candles(JAN, 4, 3_600_000))
    await storage.save_bulk_entries(EX, "BTC/USDT@mark", "5m", candles(JAN, 2))
    storage.put("raw_data/binance/BTC-USDT/5m/junk.arrow", b"not an object")
    await storage.save_series_bounds(EX, SYM, "5m", SeriesBounds(empty_before=0))
    names = [(s.coin_symbol, s.timeframe, s.candles) for s in await storage.list_series(EX, SYM)]
    assert names == [("BTC/USDT", "5m", 10), ("BTC/USDT", "1h", 4), ("BTC/USDT@mark", "5m", 2)]
    [mark] = await storage.list_series(EX, "BTC/USDT@mark")
    assert (mark.coin_symbol, mark.candles) == ("BTC/USDT@mark", 2)
    everything = await storage.list_series(EX)
    assert [s.coin_symbol for s in everything] == ["BTC/USDC", *(name for name, _, _ in names)]
    assert await storage.list_series("kraken") == []


async def test_kept_summaries_are_bounded_and_only_kept_where_listings_vouch_for_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(object_storage, "SUMMARY_ENTRIES_KEPT", 2)
    storage = MemoryStorage()
    for symbol in ("BTC/USDT", "ETH/USDT", "SOL/USDT"):
        await storage.save_bulk_entries(EX, symbol, "5m", candles(JAN, 3))
    for _ in range(2):  # the second reads the summaries the first wrote
        await storage.list_series(EX)
    assert len(storage._summaries) == storage._summary_entries == 2
    unlisted = MemoryStorage(listing_etags=False)
    await unlisted.save_bulk_entries(EX, SYM, "5m", candles(JAN, 3))
    for _ in range(2):
        await unlisted.list_series(EX)
    assert (unlisted._summaries, unlisted._summary_entries) == ({}, 0)
