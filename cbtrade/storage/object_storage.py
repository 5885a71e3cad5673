"""IRawDataStorage implemented once over a few object primitives that each backend provides.

Like freqtrade's data handlers, the backends (local files, Azure blobs) stay thin: they read,
conditionally write and list opaque objects by key. Everything about series lives here: which
objects a range spans (:class:`~cbtrade.storage.path_utility.StoragePathUtility`), the object
format, merging, and the optimistic-concurrency retry loop.

Object format (orjson)::

    {"format": 1, "candles": [[ts, o, h, l, c, v], ...], "covered": [[start, end], ...]}

Candles ascend with unique timestamps; ``covered`` is merged, ascending and clipped to the
object's period. A save reads the object, merges, and writes it back on the condition that it
is unchanged since the read (ETag); a lost race re-reads and retries, so concurrent writers
never lose each other's candles. Candles and their coverage go in the same write.
"""

from __future__ import annotations

import asyncio
import logging
import random
from abc import abstractmethod
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Awaitable, Iterable, Sequence
from operator import itemgetter
from typing import Any, TypeVar

import orjson

from cbtrade.errors import (
    InvalidPathComponentError,
    StorageConflictError,
    StorageCorruptError,
    StorageError,
)
from cbtrade.gc_pause import gc_paused
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.interfaces import IRawDataStorage, SeriesSlice
from cbtrade.storage.path_utility import RawDataObject, StoragePathUtility
from cbtrade.time_ranges import clip_ranges, merge_ranges

logger = logging.getLogger(__name__)

OBJECT_FORMAT = 1
DEFAULT_CONCURRENCY = 32
# Decoded objects kept per storage instance, validated by ETag on every read. Consecutive
# pages of a range share the object at their boundary; a small LRU saves its second decode
# without holding a whole series in memory (a scan longer than this evicts as it goes).
DECODED_CACHE_OBJECTS = 10
_BACKOFF_BASE_SECONDS = 0.005
_BACKOFF_CAP_SECONDS = 0.25
_timestamp = itemgetter(0)
_T = TypeVar("_T")


class PreconditionFailedError(StorageError):
    """A conditional write found the object created or changed since it was read."""

    code = "storage_precondition_failed"


class ObjectRawDataStorage(IRawDataStorage):
    """IRawDataStorage over keyed objects; subclasses implement the object primitives."""

    def __init__(self, *, write_attempts: int = 20, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        if write_attempts < 1 or concurrency < 1:
            raise ValueError("write_attempts and concurrency must be at least 1")
        self._paths = StoragePathUtility()
        self._write_attempts = write_attempts
        self._concurrency = concurrency
        self._decoded: OrderedDict[str, tuple[str, list[Candle], list[TimeRange]]] = OrderedDict()

    # -- primitives the backends implement ---------------------------------------------------

    @abstractmethod
    async def _read_object(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None if it does not exist."""

    async def _read_object_if_changed(
        self, key: str, etag: str | None
    ) -> tuple[bytes | None, str] | None:
        """Like :meth:`_read_object`, but ``(None, etag)`` if the object still has ``etag``.

        Backends that can ask conditionally (HTTP If-None-Match) skip the download then.
        """
        return await self._read_object(key)

    @abstractmethod
    async def _write_object(self, key: str, data: bytes, *, etag: str | None) -> None:
        """Write ``data`` if the object is as last read: absent (``etag`` None) or unchanged.

        Raises PreconditionFailedError otherwise.
        """

    @abstractmethod
    async def _list_keys(self, prefix: str, *, limit: int | None = None) -> list[str]:
        """Keys of the data objects under ``prefix`` (at most ``limit``), in any order."""

    @abstractmethod
    async def _list_child_names(self, prefix: str) -> list[str]:
        """Names of the immediate 'folders' under ``prefix`` that hold data objects."""

    # -- IRawDataStorage ---------------------------------------------------------------------

    async def save_entry(
        self, exchange_name: str, coin_symbol: str, timeframe: str, candle: Candle
    ) -> None:
        """Store one candle."""
        await self.save_bulk_entries(exchange_name, coin_symbol, timeframe, [candle])

    async def save_bulk_entries(
        self,
        exchange_name: str,
        coin_symbol: str,
        timeframe: str,
        candles: Sequence[Candle],
        *,
        covered: Sequence[TimeRange] = (),
    ) -> None:
        """Store candles and coverage, one conditional read-merge-write per object."""
        covered = merge_ranges(TimeRange(*r) for r in covered)
        spans = [TimeRange(r.start, r.end) for r in covered]
        if candles:
            spans.append(TimeRange(candles[0].timestamp, candles[-1].timestamp + 1))
        objects: dict[str, RawDataObject] = {}
        for span in merge_ranges(spans):
            for obj in self._paths.objects_spanning(
                exchange_name, coin_symbol, timeframe, span.start, span.end
            ):
                objects[obj.key] = obj
        if not objects:
            # Still validate the series names: a bad name must fail even with nothing to save.
            self._paths.get_series_prefix(exchange_name, coin_symbol, timeframe)
            return
        timestamps = [c.timestamp for c in candles]
        updates = []
        for obj in objects.values():
            lo = bisect_left(timestamps, obj.period.start)
            hi = bisect_left(timestamps, obj.period.end, lo)
            obj_covered = clip_ranges(covered, obj.period)
            if hi > lo or obj_covered:
                updates.append(self._update_object(obj, candles[lo:hi], obj_covered))
        await self._gather_bounded(updates)

    async def get_range(
        self, exchange_name: str, coin_symbol: str, timeframe: str, start_time: int, end_time: int
    ) -> list[Candle]:
        """Stored candles in ``[start_time, end_time)``, ascending."""
        stored = await self.get_range_with_coverage(
            exchange_name, coin_symbol, timeframe, start_time, end_time
        )
        return stored.candles

    async def get_range_with_coverage(
        self, exchange_name: str, coin_symbol: str, timeframe: str, start_time: int, end_time: int
    ) -> SeriesSlice:
        """Stored candles and coverage in ``[start_time, end_time)``; objects read in parallel."""
        objects = self._paths.objects_spanning(
            exchange_name, coin_symbol, timeframe, start_time, end_time
        )
        if len(objects) > self._concurrency:
            # A wide range: one listing is cheaper than a GET per period that may not exist.
            prefix = self._paths.get_series_prefix(exchange_name, coin_symbol, timeframe)
            existing = set(await self._list_keys(prefix))
            objects = [obj for obj in objects if obj.key in existing]
        contents = await self._gather_bounded(self._load_candles(obj.key) for obj in objects)
        candles: list[Candle] = []
        covered: list[TimeRange] = []
        for obj, (rows, obj_covered) in zip(objects, contents, strict=True):
            lo = (
                0
                if obj.period.start >= start_time
                else bisect_left(rows, start_time, key=_timestamp)
            )
            hi = (
                len(rows)
                if obj.period.end <= end_time
                else bisect_left(rows, end_time, lo, key=_timestamp)
            )
            candles.extend(rows[lo:hi])
            covered.extend(obj_covered)
        return SeriesSlice(candles, clip_ranges(covered, TimeRange(start_time, end_time)))

    async def get_latest_timestamp(
        self, exchange_name: str, coin_symbol: str, timeframe: str
    ) -> int | None:
        """Newest stored candle: list the series, read objects newest first until one has any."""
        prefix = self._paths.get_series_prefix(exchange_name, coin_symbol, timeframe)
        periods = []
        for key in await self._list_keys(prefix):
            try:
                periods.append((self._paths.parse_path(key).period.start, key))
            except InvalidPathComponentError:
                logger.warning("ignoring unexpected object %s in the raw data store", key)
        for _, key in sorted(periods, reverse=True):
            candles, _covered = await self._load_candles(key)
            if candles:
                return candles[-1].timestamp
        return None

    async def list_coins(self, exchange_name: str) -> list[str]:
        """Symbols with anything stored for the exchange, sorted."""
        symbols = []
        for name in await self._list_child_names(self._paths.get_exchange_prefix(exchange_name)):
            try:
                symbols.append(self._paths.decode_symbol(name))
            except InvalidPathComponentError:
                logger.warning("ignoring unexpected folder %r in the raw data store", name)
        return sorted(symbols)

    async def check_coin_exists(
        self, exchange_name: str, coin_symbol: str, timeframe: str | None = None
    ) -> bool:
        """Whether any object is stored for the symbol (and timeframe, if given)."""
        if timeframe is None:
            prefix = self._paths.get_coin_base_path(exchange_name, coin_symbol) + "/"
        else:
            prefix = self._paths.get_series_prefix(exchange_name, coin_symbol, timeframe)
        return bool(await self._list_keys(prefix, limit=1))

    # -- internals ---------------------------------------------------------------------------

    async def _load_candles(self, key: str) -> tuple[list[Candle], list[TimeRange]]:
        """The candles and coverage of an object, decoded once per ETag; empty if absent."""
        cached = self._decoded.get(key)
        found = await self._read_object_if_changed(key, None if cached is None else cached[0])
        if found is None:
            self._decoded.pop(key, None)
            return [], []
        data, etag = found
        if cached is not None and cached[0] == etag:
            candles, covered = cached[1], cached[2]
        else:
            if data is None:  # only a backend's bug could say "unchanged" for an unknown ETag
                raise StorageError(f"{key}: reported unchanged but not cached")
            with gc_paused():
                rows, covered = _decode(key, data)
                candles = _to_candles(key, rows)
        # Concurrent loads may have evicted or replaced the entry while this one awaited.
        self._decoded[key] = (etag, candles, covered)
        self._decoded.move_to_end(key)
        while len(self._decoded) > DECODED_CACHE_OBJECTS:
            self._decoded.popitem(last=False)
        return candles, covered

    async def _update_object(
        self, obj: RawDataObject, candles: Sequence[Candle], covered: list[TimeRange]
    ) -> None:
        for attempt in range(self._write_attempts):
            found = await self._read_object(obj.key)
            if found is None:
                rows: list[Any] = []
                old_covered: list[TimeRange] = []
                etag = None
            else:
                rows, old_covered = _decode(obj.key, found[0])
                etag = found[1]
            new_covered = merge_ranges([*old_covered, *covered])
            if not candles and new_covered == old_covered:
                return
            data = _encode(_merge_rows(rows, candles), new_covered)
            try:
                await self._write_object(obj.key, data, etag=etag)
            except PreconditionFailedError:
                cap = min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt)
                await asyncio.sleep(random.uniform(0, cap))
            else:
                return
        raise StorageConflictError(
            f"{obj.key}: still changed by concurrent writers after {self._write_attempts} attempts"
        )

    async def _gather_bounded(self, awaitables: Iterable[Awaitable[_T]]) -> list[_T]:
        """Await all, at most ``concurrency`` at once; the first failure cancels the rest."""
        semaphore = asyncio.Semaphore(self._concurrency)

        async def bounded(awaitable: Awaitable[_T]) -> _T:
            async with semaphore:
                return await awaitable

        pending = list(awaitables)
        if len(pending) == 1:
            return [await pending[0]]
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(bounded(a)) for a in pending]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return [task.result() for task in tasks]


def _merge_rows(rows: list[Any], candles: Sequence[Candle]) -> list[Any]:
    """Stored rows with ``candles`` merged in (same timestamp: the new candle wins)."""
    if not candles:
        return rows
    if not rows or rows[-1][0] < candles[0].timestamp:
        return [*rows, *candles]
    by_timestamp = {row[0]: row for row in rows}
    by_timestamp.update((c.timestamp, c) for c in candles)
    return [by_timestamp[ts] for ts in sorted(by_timestamp)]


def _encode(rows: list[Any], covered: list[TimeRange]) -> bytes:
    # Candle is a tuple subclass, which orjson hands to ``default``.
    return orjson.dumps(
        {"format": OBJECT_FORMAT, "candles": rows, "covered": covered}, default=tuple
    )


def _decode(key: str, data: bytes) -> tuple[list[list[Any]], list[TimeRange]]:
    """Rows and coverage of a stored object; StorageCorruptError if it is not one."""
    try:
        document = orjson.loads(data)
        if document.get("format") != OBJECT_FORMAT:
            raise ValueError(f"unknown format {document.get('format')!r}")
        rows = document["candles"]
        covered = [TimeRange(start, end) for start, end in document["covered"]]
        if not isinstance(rows, list) or any(
            type(start) is not int or type(end) is not int for start, end in covered
        ):
            raise ValueError("bad candles or coverage")
        if rows and not (
            isinstance(rows[0], list) and len(rows[0]) == 6 and type(rows[0][0]) is int
        ):
            raise ValueError("bad candle row")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StorageCorruptError(f"{key}: not a raw data object ({exc})") from None
    return rows, covered


def _to_candles(key: str, rows: list[list[Any]]) -> list[Candle]:
    try:
        return list(map(Candle._make, rows))
    except TypeError as exc:
        raise StorageCorruptError(f"{key}: bad candle row ({exc})") from None
