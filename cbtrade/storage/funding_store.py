"""FundingStore: contracts' funding-rate histories, over the candle store's backend.

Funding events are stored by their own timestamps (they are not on a grid: a contract's
interval differs by exchange and changes over time), one object per contract and calendar
year (``funding/{exchange}/{encoded_symbol}/{yyyy}.arrow``, see
:mod:`~cbtrade.storage.path_utility`). An object is an Arrow IPC stream of the columns
``timestamp`` (int64, epoch ms UTC) and ``rate`` (float64), with the time ranges fetched from
the exchange in its ``cbtrade.covered`` metadata, as candle objects have
(:func:`~cbtrade.storage.object_storage.encode_columns`): events and the coverage they
belong to go in the same conditional read-merge-write, so nothing is marked fetched that was
not stored. A year fetched wholly and found without an event (before the contract's
listing) gets no object: it is recorded in the contract's ``empty_years.json``, so a read
from 1970 costs that record, a listing and the years that hold events. Decoded objects are
cached and revalidated by ETag on every read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import orjson
import pyarrow as pa

from cbtrade.errors import StorageCorruptError
from cbtrade.models import FundingRate, TimeRange
from cbtrade.storage.object_storage import (
    LIST_FOLDER_AT,
    ObjectRawDataStorage,
    decode_columns,
    encode_columns,
)
from cbtrade.storage.path_utility import RawDataObject, StoragePathUtility
from cbtrade.time_ranges import clip_ranges, merge_ranges

FUNDING_FIELDS = ("timestamp", "rate")
FUNDING_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.int64(), nullable=False),
        pa.field("rate", pa.float64(), nullable=False),
    ]
)
FUNDING_FORMAT = b"funding-1"
EMPTY_YEARS_NAME = "empty_years.json"
"""Beside a contract's year objects: ``{"empty_years": [[start, end], ...]}``, the years
fetched wholly and found without an event (before its listing), which get no object."""
DEFAULT_CACHED_OBJECTS = 256
"""Decoded objects kept: a year of hourly funding is 8,784 events, 140 kB of columns."""


class FundingSlice(NamedTuple):
    """What is stored of one contract's funding within a requested range."""

    events: pa.Table
    """Events in the range, ascending, one per timestamp (columns ``timestamp``, ``rate``)."""
    covered: list[TimeRange]
    """Fetched ranges clipped to the requested range, merged and ascending."""


class _Cached(NamedTuple):
    etag: str
    events: pa.Table
    covered: list[TimeRange]


def funding_table(events: Iterable[FundingRate]) -> pa.Table:
    """``events`` as columns, ascending, the last of each timestamp kept."""
    by_time = {event.timestamp: event.rate for event in events}
    stamps = sorted(by_time)
    return pa.table(
        [pa.array(stamps, pa.int64()), pa.array([by_time[t] for t in stamps], pa.float64())],
        schema=FUNDING_SCHEMA,
    )


def funding_between(events: pa.Table, start: int, end: int) -> pa.Table:
    """The rows of ascending ``events`` with ``start <= timestamp < end`` (a zero-copy
    slice)."""
    stamps = events.column("timestamp").to_numpy()
    lo, hi = np.searchsorted(stamps, [start, end], side="left")
    return events.slice(int(lo), int(hi - lo))


def merge_funding(old: pa.Table, new: pa.Table) -> pa.Table:
    """``old`` and ``new`` events as one ascending table; ``new`` wins on a timestamp."""
    if not new.num_rows:
        return old
    if not old.num_rows:
        return new
    return funding_table(FundingRate(*row) for table in (old, new) for row in _rows(table))


def _rows(events: pa.Table) -> Iterable[tuple[int, float]]:
    return zip(
        events.column("timestamp").to_pylist(), events.column("rate").to_pylist(), strict=True
    )


class FundingStore:
    """Reads and writes funding-rate histories in a candle store's backend (its objects,
    conditional writes and listings), one object per contract and year."""

    def __init__(
        self, backend: ObjectRawDataStorage, *, cached_objects: int = DEFAULT_CACHED_OBJECTS
    ) -> None:
        self._backend = backend
        self._paths = StoragePathUtility()
        self._cached: OrderedDict[str, _Cached] = OrderedDict()
        self._cached_objects = cached_objects
        self._empty: dict[str, tuple[str, list[TimeRange]]] = {}
        """Key of a contract's empty-years record: its ETag and years, when last read."""

    async def read(
        self, exchange_name: str, coin_symbol: str, start: int, end: int
    ) -> FundingSlice:
        """Stored events and coverage of ``[start, end)``. Years recorded empty cost no
        request; the contract's objects are listed once when the range spans several other
        years (absent years then cost no request either)."""
        empty_years = await self._empty_years(exchange_name, coin_symbol)
        objects = [
            obj
            for obj in self._paths.funding_objects_spanning(exchange_name, coin_symbol, start, end)
            if clip_ranges(empty_years, obj.period) != [obj.period]
        ]
        listed: dict[str, str | None] | None = None
        if len(objects) >= LIST_FOLDER_AT:
            prefix = self._paths.get_funding_prefix(exchange_name, coin_symbol)
            listed = await self._backend.list_object_etags(prefix)
        to_load = [obj for obj in objects if listed is None or obj.key in listed]
        loaded = await self._backend.gather_bounded(
            self._load(obj.key, None if listed is None else listed[obj.key]) for obj in to_load
        )
        window = TimeRange(start, end)
        events = (
            pa.concat_tables([funding_between(table, start, end) for table, _ in loaded])
            if loaded
            else funding_table(())
        )
        covered = clip_ranges(
            [*empty_years, *(r for _, obj_covered in loaded for r in obj_covered)], window
        )
        return FundingSlice(events, covered)

    async def save(
        self,
        exchange_name: str,
        coin_symbol: str,
        events: Sequence[FundingRate],
        *,
        covered: Sequence[TimeRange],
    ) -> None:
        """Store ``events`` and mark ``covered`` as fetched, one conditional read-merge-write
        per year object (events outside ``covered`` are stored too). A year wholly covered
        with no event (before a listing) gets no object: it is added to the contract's
        record of empty years instead."""
        ranges = merge_ranges(TimeRange(*r) for r in covered)
        spans = list(ranges)
        if events:
            stamps = [event.timestamp for event in events]
            spans.append(TimeRange(min(stamps), max(stamps) + 1))
        table = funding_table(events)
        updates = []
        empty_years = []
        for span in merge_ranges(spans):
            for obj in self._paths.funding_objects_spanning(
                exchange_name, coin_symbol, span.start, span.end
            ):
                obj_events = funding_between(table, obj.period.start, obj.period.end)
                obj_covered = clip_ranges(ranges, obj.period)
                if not obj_events.num_rows and obj_covered == [obj.period]:
                    empty_years.append(obj.period)
                elif obj_events.num_rows or obj_covered:
                    updates.append(self._update(obj, obj_events, obj_covered))
        if empty_years:
            updates.append(self._add_empty_years(exchange_name, coin_symbol, empty_years))
        await self._backend.gather_bounded(updates)

    async def _empty_years(self, exchange_name: str, coin_symbol: str) -> list[TimeRange]:
        """The years recorded as wholly fetched with no event, merged (revalidated by ETag)."""
        key = self._paths.get_funding_prefix(exchange_name, coin_symbol) + EMPTY_YEARS_NAME
        cached = self._empty.get(key)
        found = await self._backend.read_object_if_changed(
            key, None if cached is None else cached[0]
        )
        if found is None:
            self._empty.pop(key, None)
            return []
        data, etag = found
        if data is None and cached is not None and cached[0] == etag:
            return cached[1]
        years = _decode_years(key, data)
        self._empty[key] = (etag, years)
        return years

    async def _add_empty_years(
        self, exchange_name: str, coin_symbol: str, years: list[TimeRange]
    ) -> None:
        key = self._paths.get_funding_prefix(exchange_name, coin_symbol) + EMPTY_YEARS_NAME

        def add(found: bytes | None) -> tuple[bytes | None, None]:
            stored = [] if found is None else _decode_years(key, found)
            merged = merge_ranges([*stored, *years])
            if merged == stored:
                return None, None
            return orjson.dumps({"empty_years": merged}, default=list), None

        await self._backend.rewrite_object(key, add)
        self._empty.pop(key, None)

    async def _load(self, key: str, listed_etag: str | None) -> tuple[pa.Table, list[TimeRange]]:
        """An object's events and coverage, decoded once per ETag; empty if absent."""
        cached = self._cached.get(key)
        if cached is not None and cached.etag == listed_etag:
            self._cached.move_to_end(key)
            return cached.events, cached.covered
        found = await self._backend.read_object_if_changed(
            key, None if cached is None else cached.etag
        )
        self._cached.pop(key, None)
        if found is None:
            return funding_table(()), []
        data, etag = found
        if data is None and cached is not None and cached.etag == etag:
            entry = cached
        else:
            entry = _Cached(etag, *_decode(key, data))
        self._cached[key] = entry
        while len(self._cached) > self._cached_objects:
            self._cached.popitem(last=False)
        return entry.events, entry.covered

    async def _update(self, obj: RawDataObject, events: pa.Table, covered: list[TimeRange]) -> None:
        """Merge ``events`` and ``covered`` into the object (newer events win)."""

        def merge(found: bytes | None) -> tuple[bytes | None, None]:
            old_events, old_covered = _decode(obj.key, found)
            new_covered = merge_ranges([*old_covered, *covered])
            if not events.num_rows and new_covered == old_covered:
                return None, None
            merged = merge_funding(old_events, events)
            return (
                encode_columns(merged, FUNDING_SCHEMA, new_covered, object_format=FUNDING_FORMAT),
                None,
            )

        await self._backend.rewrite_object(obj.key, merge)
        self._cached.pop(obj.key, None)


def _decode(key: str, data: bytes | None) -> tuple[pa.Table, list[TimeRange]]:
    if data is None:
        return funding_table(()), []
    columns, covered = decode_columns(key, data, object_format=FUNDING_FORMAT)
    try:
        return columns.cast(FUNDING_SCHEMA), covered
    except (pa.ArrowException, ValueError) as exc:
        raise StorageCorruptError(f"{key}: not a funding object ({exc})") from None


def _decode_years(key: str, data: bytes | None) -> list[TimeRange]:
    try:
        years = orjson.loads(data or b"")["empty_years"]
        ranges = [TimeRange(start, end) for start, end in years]
        if any(type(t) is not int for r in ranges for t in r):
            raise ValueError("not epoch ms")
        return merge_ranges(ranges)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StorageCorruptError(f"{key}: not an empty-years record ({exc})") from None
