"""TimedRowStore: series stored by their rows' own timestamps, with the time ranges fetched.

Some series are not on a grid the service knows: funding events (a contract's interval
differs by exchange and changes over time) and the exchanges' own calendar candles (weekly,
monthly, ``3d``: each exchange aligns them its own way). Their rows are stored by their own
timestamps, one object per series folder and calendar year (``{folder}{yyyy}.arrow``, see
:mod:`~cbtrade.storage.path_utility`). An object is an Arrow IPC stream of the series' columns
(``timestamp``, int64 epoch ms UTC, first), with the time ranges fetched from the exchange in
its ``cbtrade.covered`` metadata, as candle objects have
(:func:`~cbtrade.storage.object_storage.encode_columns`): rows and the coverage they belong
to go in the same conditional read-merge-write, so nothing is marked fetched that was not
stored. A year fetched wholly and found without a row (before a listing) gets no object: it
is recorded in the folder's ``empty_years.json``, so a read from 1970 costs that record, a
listing and the years that hold rows. Decoded objects are cached and revalidated by ETag on
every read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Iterable, Sequence
from typing import NamedTuple, TypeVar

import numpy as np
import orjson
import pyarrow as pa

from cbtrade.errors import StorageCorruptError
from cbtrade.models import TimeRange
from cbtrade.storage.object_storage import (
    LIST_FOLDER_AT,
    ObjectRawDataStorage,
    decode_columns,
    encode_columns,
)
from cbtrade.storage.path_utility import RawDataObject, StoragePathUtility
from cbtrade.time_ranges import clip_ranges, merge_ranges

EMPTY_YEARS_NAME = "empty_years.json"
"""Beside a series' year objects: ``{"empty_years": [[start, end], ...]}``, the years
fetched wholly and found without a row (before its listing), which get no object."""
_T = TypeVar("_T")
DEFAULT_CACHED_OBJECTS = 256
"""Decoded objects kept: a year of hourly funding is 8,784 rows, 140 kB of columns."""


class TimedSlice(NamedTuple):
    """What is stored of one series within a requested range."""

    rows: pa.Table
    """Rows in the range, ascending, one per timestamp."""
    covered: list[TimeRange]
    """Fetched ranges clipped to the requested range, merged and ascending."""


class _Cached(NamedTuple):
    etag: str
    rows: pa.Table
    covered: list[TimeRange]


def rows_between(rows: pa.Table, start: int, end: int) -> pa.Table:
    """The rows of ascending ``rows`` with ``start <= timestamp < end`` (a zero-copy slice)."""
    stamps = rows.column("timestamp").to_numpy()
    lo, hi = np.searchsorted(stamps, [start, end], side="left")
    return rows.slice(int(lo), int(hi - lo))


def merge_rows(old: pa.Table, new: pa.Table) -> pa.Table:
    """Two ascending tables of one schema as one, ascending; ``new`` wins on a timestamp."""
    if not new.num_rows:
        return old
    if not old.num_rows:
        return new
    both = pa.concat_tables([old, new])
    stamps = both.column("timestamp").to_numpy()
    order = np.argsort(stamps, kind="stable")  # of equal stamps, old's row comes first
    ordered = stamps[order]
    last_of_each = np.append(ordered[1:] != ordered[:-1], True)
    return both.take(pa.array(order[last_of_each]))


class TimedRowStore:
    """Reads and writes series of timestamped rows in a candle store's backend (its objects,
    conditional writes and listings), one object per series folder and year."""

    def __init__(
        self,
        backend: ObjectRawDataStorage,
        *,
        schema: pa.Schema,
        object_format: bytes,
        cached_objects: int = DEFAULT_CACHED_OBJECTS,
    ) -> None:
        self._backend = backend
        self._schema = schema
        self._object_format = object_format
        self._paths = StoragePathUtility()
        self._cached: OrderedDict[str, _Cached] = OrderedDict()
        self._cached_objects = cached_objects
        self._empty: dict[str, tuple[str, list[TimeRange]]] = {}
        """Key of a folder's empty-years record: its ETag and years, when last read."""

    def empty(self) -> pa.Table:
        """No rows, in this store's schema."""
        return self._schema.empty_table()

    async def gather_bounded(self, awaitables: Iterable[Awaitable[_T]]) -> list[_T]:
        """Await all, at most the backend's concurrency at once."""
        return await self._backend.gather_bounded(awaitables)

    async def list_objects(self, prefix: str) -> dict[str, str | None]:
        """The data objects under ``prefix``, each with its ETag if the listing tells it, in
        one listing."""
        return await self._backend.list_object_etags(prefix)

    async def read_rows(self, folder: str, start: int, end: int) -> TimedSlice:
        """Stored rows and coverage of ``[start, end)`` under ``folder`` (a series' key prefix,
        ending with ``/``). Years recorded empty cost no request; the folder is listed once
        when the range spans several other years (absent years then cost no request either)."""
        empty_years = await self._empty_years(folder)
        objects = [
            obj
            for obj in self._paths.year_objects_spanning(folder, start, end)
            if clip_ranges(empty_years, obj.period) != [obj.period]
        ]
        listed: dict[str, str | None] | None = None
        if len(objects) >= LIST_FOLDER_AT:
            listed = await self._backend.list_object_etags(folder)
        slice_ = await self.read_listed(objects, listed, TimeRange(start, end))
        covered = clip_ranges([*empty_years, *slice_.covered], TimeRange(start, end))
        return TimedSlice(slice_.rows, covered)

    async def read_listed(
        self,
        objects: list[RawDataObject],
        listed: dict[str, str | None] | None,
        window: TimeRange,
    ) -> TimedSlice:
        """The rows and coverage of ``objects`` within ``window`` (years recorded empty left
        out): those ``listed`` (keys with their listed ETags; None: not listed, each object
        is asked for) are decoded once per ETag, and a cached one whose ETag the listing
        shows costs no request."""
        start, end = window
        to_load = [obj for obj in objects if listed is None or obj.key in listed]
        loaded = await self._backend.gather_bounded(
            self._load(obj.key, None if listed is None else listed[obj.key]) for obj in to_load
        )
        rows = (
            pa.concat_tables([rows_between(table, start, end) for table, _ in loaded])
            if loaded
            else self.empty()
        )
        covered = clip_ranges([r for _, obj_covered in loaded for r in obj_covered], window)
        return TimedSlice(rows, covered)

    async def save_rows(self, folder: str, rows: pa.Table, *, covered: Sequence[TimeRange]) -> None:
        """Store ``rows`` (ascending, one per timestamp) and mark ``covered`` as fetched, one
        conditional read-merge-write per year object (rows outside ``covered`` are stored
        too). A year wholly covered with no row (before a listing) gets no object: it is
        added to the folder's record of empty years instead."""
        ranges = merge_ranges(TimeRange(*r) for r in covered)
        spans = list(ranges)
        if rows.num_rows:
            stamps = rows.column("timestamp").to_numpy()
            spans.append(TimeRange(int(stamps[0]), int(stamps[-1]) + 1))
        updates = []
        empty_years = []
        for span in merge_ranges(spans):
            for obj in self._paths.year_objects_spanning(folder, span.start, span.end):
                obj_rows = rows_between(rows, obj.period.start, obj.period.end)
                obj_covered = clip_ranges(ranges, obj.period)
                if not obj_rows.num_rows and obj_covered == [obj.period]:
                    empty_years.append(obj.period)
                elif obj_rows.num_rows or obj_covered:
                    updates.append(self._update(obj, obj_rows, obj_covered))
        if empty_years:
            updates.append(self._add_empty_years(folder, empty_years))
        await self._backend.gather_bounded(updates)

    async def _empty_years(self, folder: str) -> list[TimeRange]:
        """The years recorded as wholly fetched with no row, merged (revalidated by ETag)."""
        key = folder + EMPTY_YEARS_NAME
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

    async def _add_empty_years(self, folder: str, years: list[TimeRange]) -> None:
        key = folder + EMPTY_YEARS_NAME

        def add(found: bytes | None) -> tuple[bytes | None, None]:
            stored = [] if found is None else _decode_years(key, found)
            merged = merge_ranges([*stored, *years])
            if merged == stored:
                return None, None
            return orjson.dumps({"empty_years": merged}, default=list), None

        await self._backend.rewrite_object(key, add)
        self._empty.pop(key, None)

    async def _load(self, key: str, listed_etag: str | None) -> tuple[pa.Table, list[TimeRange]]:
        """An object's rows and coverage, decoded once per ETag; empty if absent."""
        cached = self._cached.get(key)
        if cached is not None and cached.etag == listed_etag:
            self._cached.move_to_end(key)
            return cached.rows, cached.covered
        found = await self._backend.read_object_if_changed(
            key, None if cached is None else cached.etag
        )
        self._cached.pop(key, None)
        if found is None:
            return self.empty(), []
        data, etag = found
        if data is None and cached is not None and cached.etag == etag:
            entry = cached
        else:
            entry = _Cached(etag, *self._decode(key, data))
        self._cached[key] = entry
        while len(self._cached) > self._cached_objects:
            self._cached.popitem(last=False)
        return entry.rows, entry.covered

    async def _update(self, obj: RawDataObject, rows: pa.Table, covered: list[TimeRange]) -> None:
        """Merge ``rows`` and ``covered`` into the object (newer rows win)."""

        def merge(found: bytes | None) -> tuple[bytes | None, None]:
            old_rows, old_covered = self._decode(obj.key, found)
            new_covered = merge_ranges([*old_covered, *covered])
            if not rows.num_rows and new_covered == old_covered:
                return None, None
            merged = merge_rows(old_rows, rows)
            return (
                encode_columns(
                    merged, self._schema, new_covered, object_format=self._object_format
                ),
                None,
            )

        await self._backend.rewrite_object(obj.key, merge)
        self._cached.pop(obj.key, None)

    def _decode(self, key: str, data: bytes | None) -> tuple[pa.Table, list[TimeRange]]:
        if data is None:
            return self.empty(), []
        columns, covered = decode_columns(key, data, object_format=self._object_format)
        try:
            return columns.cast(self._schema), covered
        except (pa.ArrowException, ValueError) as exc:
            raise StorageCorruptError(
                f"{key}: not an object of this series' columns ({exc})"
            ) from None


def _decode_years(key: str, data: bytes | None) -> list[TimeRange]:
    try:
        years = orjson.loads(data or b"")["empty_years"]
        ranges = [TimeRange(start, end) for start, end in years]
        if any(type(t) is not int for r in ranges for t in r):
            raise ValueError("not epoch ms")
        return merge_ranges(ranges)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StorageCorruptError(f"{key}: not an empty-years record ({exc})") from None
