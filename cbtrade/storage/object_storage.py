"""IRawDataStorage implemented once over a few object primitives that each backend provides.

Like freqtrade's data handlers, the backends (local files, Azure blobs) stay thin: they read,
conditionally write and list opaque objects by key. Everything about series lives here: which
objects a range spans (:class:`~cbtrade.storage.path_utility.StoragePathUtility`), the object
format, merging, and the optimistic-concurrency retry loop.

Object format: an Arrow IPC stream (zstd-compressed buffers) of the candle columns
(:data:`~cbtrade.candle_table.CANDLE_SCHEMA`), with two schema metadata entries::

    cbtrade.format   b"2"
    cbtrade.covered  JSON [[start, end], ...]

Candles ascend with unique timestamps; ``covered`` is merged, ascending and clipped to the
object's period. Reading an object maps its columns without a Python object per candle, and
every read of a range is a zero-copy slice of them.

A save reads the object, merges, and writes it back on the condition that it is unchanged
since the read (ETag); a lost race re-reads and retries, so concurrent writers never lose
each other's candles. Candles and their coverage go in the same write. A repair
(:meth:`~ObjectRawDataStorage.replace_range`) and the series bounds record go through the
same read-modify-write loop.

The series bounds record is a JSON object (``{"empty_before": ms, "first_candle": ms | null,
"empty_from": ms | null}``) beside the series' data objects. It is not cached: it is read
whenever it is asked for, so every instance sees the latest one.

Reads keep decoded objects in a cache bounded in bytes and validate every cached *open*
object on every read, so a read never returns less than another instance has stored: one
conditional read per object (on Azure a 304 if unchanged; local files are read and hashed),
or, for a folder that holds several of the read's objects, one listing whose ETags validate
them all (on backends whose listings carry ETags: Azure).

*Sealed* objects are served from the cache with no request at all. An object is sealed when
its coverage is its whole period and the period ended at least ``seal_after_ms`` ago (the
fetcher's grace period: no fill writes there any more). Only a repair
(:meth:`~ObjectRawDataStorage.replace_range`) changes one; it then rewrites the series'
repair marker (``generation.json`` beside its objects) after the objects. Each instance reads
a series' marker at most every ``recheck_seconds`` when it reads the series, and
drops the series' cached objects when the marker has changed, so a repair on one instance is
served by every other within that bound.

The series catalog (:meth:`~ObjectRawDataStorage.list_series`) reads coverage, not candles:
one listing of the objects with their ETags, and each series' ``summary.json``, a cache of
what each object held at an ETag (:mod:`cbtrade.storage.catalog`); only objects the summary
does not vouch for are read. Saves never write it; the catalog does, best-effort.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

import orjson
import pyarrow as pa

from cbtrade.candle_table import CANDLE_SCHEMA, CandleTable
from cbtrade.errors import (
    InvalidPathComponentError,
    StorageConflictError,
    StorageCorruptError,
    StorageError,
)
from cbtrade.models import Candle, TimeRange
from cbtrade.price_types import split_series_symbol
from cbtrade.storage.catalog import (
    ObjectSummary,
    catalog_order,
    decode_summary,
    encode_summary,
    summarize_object,
    summarize_series,
)
from cbtrade.storage.interfaces import IRawDataStorage, SeriesBounds, SeriesSlice, SeriesSummary
from cbtrade.storage.path_utility import (
    DOCUMENT_SUFFIX,
    GENERATION_NAME,
    MAX_TIMESTAMP,
    OBJECT_SUFFIX,
    SUMMARY_NAME,
    RawDataObject,
    StoragePathUtility,
)
from cbtrade.time_ranges import clip_ranges, merge_ranges
from cbtrade.timeframes import timeframe_to_ms

logger = logging.getLogger(__name__)

OBJECT_FORMAT = b"2"
_FORMAT_KEY = b"cbtrade.format"
_COVERED_KEY = b"cbtrade.covered"
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")
DEFAULT_CONCURRENCY = 32
# Bytes of decoded columns kept per storage instance, validated by ETag on every read (by a
# folder listing, or a conditional read that skips the download if unchanged). A year of 5m
# candles is 5 MB of columns, of 1m 25 MB; older entries are evicted first.
DECODED_CACHE_BYTES = 64 * 1024 * 1024
# A folder that holds at least this many of a read's objects is listed once, and the listed
# ETags validate its cached objects: on Azurite one listing of 12 objects costs about what 3
# conditional GETs do (each a pass through the azure-core pipeline).
LIST_FOLDER_AT = 3
SUMMARY_ENTRIES_KEPT = 100_000
"""Entries (one an object, ~0.3 kB) of the series summaries kept per storage instance,
validated by the catalog's listing: on backends whose listings carry ETags a warm catalog
request is then that one listing. 100,000 is 270 years of 1m series' day objects, or 8,000
years of 5m series' months; least recently used summaries go first."""
_SUMMARY_SUFFIX = "/" + SUMMARY_NAME
_BACKOFF_BASE_SECONDS = 0.005
_BACKOFF_CAP_SECONDS = 0.25
_T = TypeVar("_T")


class SealingPolicy(NamedTuple):
    """When cached objects are served with no request (see the module's docstring)."""

    seal_after_ms: int
    """An object wholly covered whose period ended at least this long ago is sealed."""
    recheck_seconds: float = 10.0
    """How often a series' repair marker is read: the bound on how long another instance's
    repair takes to be served here."""


class _Decoded(NamedTuple):
    """A cached, decoded object."""

    etag: str
    table: CandleTable
    covered: list[TimeRange]
    full_until: int | None
    """The end of the object's period if its coverage is the whole period, else None."""


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class PreconditionFailedError(StorageError):
    """A conditional write found the object created or changed since it was read."""

    code = "storage_precondition_failed"


class ObjectRawDataStorage(IRawDataStorage):
    """IRawDataStorage over keyed objects; subclasses implement the object primitives."""

    def __init__(
        self,
        *,
        write_attempts: int = 20,
        concurrency: int = DEFAULT_CONCURRENCY,
        sealing: SealingPolicy | None = None,
        clock: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        """``sealing``: when objects are sealed (None: never)."""
        if write_attempts < 1 or concurrency < 1:
            raise ValueError("write_attempts and concurrency must be at least 1")
        self._paths = StoragePathUtility()
        self._write_attempts = write_attempts
        self._concurrency = concurrency
        self._seal_after_ms = None if sealing is None else sealing.seal_after_ms
        self._generation_check_seconds = 0.0 if sealing is None else sealing.recheck_seconds
        self._clock = clock
        self._decoded: OrderedDict[str, _Decoded] = OrderedDict()
        self._decoded_bytes = 0
        self._generations: dict[str, tuple[str | None, float]] = {}
        """Series prefix: the ETag of its repair marker when last read, and when (monotonic)."""
        self._summaries: OrderedDict[str, tuple[str, dict[str, ObjectSummary]]] = OrderedDict()
        """Series summary key: its ETag and entries when last read (see list_series)."""
        self._summary_entries = 0
        self._epochs: dict[str, int] = {}
        """Series prefix: how often this instance has dropped the series' sealed objects."""

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
    async def _list_keys(
        self, prefix: str, *, limit: int | None = None, suffix: str = OBJECT_SUFFIX
    ) -> list[str]:
        """Keys under ``prefix`` ending in ``suffix`` (data objects by default), at most
        ``limit``, in any order."""

    async def _list_etags(
        self, prefix: str, *, suffixes: tuple[str, ...] = (OBJECT_SUFFIX,)
    ) -> dict[str, str | None]:
        """The objects under ``prefix`` ending in one of ``suffixes`` (data objects by
        default), each with its ETag if the listing tells it.

        Backends whose listings carry no ETags keep this default: their objects are then
        validated by reading them.
        """
        if suffixes == (OBJECT_SUFFIX,):
            return dict.fromkeys(await self._list_keys(prefix))
        return dict.fromkeys(
            k for k in await self._list_keys(prefix, suffix="") if k.endswith(suffixes)
        )

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
        table = CandleTable.from_candles(candles)
        updates = []
        for obj in objects.values():
            obj_candles = table.between(obj.period.start, obj.period.end)
            obj_covered = clip_ranges(covered, obj.period)
            if len(obj_candles) or obj_covered:
                updates.append(self._update_object(obj, obj_candles, obj_covered))
        await self._gather_bounded(updates)

    async def get_range(
        self, exchange_name: str, coin_symbol: str, timeframe: str, start_time: int, end_time: int
    ) -> list[Candle]:
        """Stored candles in ``[start_time, end_time)``, ascending."""
        stored = await self.get_range_with_coverage(
            exchange_name, coin_symbol, timeframe, start_time, end_time
        )
        return stored.candles.to_candles()

    async def get_range_with_coverage(
        self, exchange_name: str, coin_symbol: str, timeframe: str, start_time: int, end_time: int
    ) -> SeriesSlice:
        """Stored candles and coverage in ``[start_time, end_time)``; objects read in parallel."""
        objects = self._paths.objects_spanning(
            exchange_name, coin_symbol, timeframe, start_time, end_time
        )
        series_prefix = self._paths.get_series_prefix(exchange_name, coin_symbol, timeframe)
        keys = [obj.key for obj in objects]
        if self._seal_after_ms is not None:
            await self._check_generation(series_prefix)
        sealed = {key: entry for key in keys if (entry := self._sealed_entry(key)) is not None}
        to_load = await self._keys_to_load([k for k in keys if k not in sealed])
        loaded = await self._gather_bounded(
            self._load_table(key, listed_etag=etag) for key, etag in to_load
        )
        by_key = {key: (entry.table, entry.covered) for key, entry in sealed.items()}
        by_key.update(zip((key for key, _ in to_load), loaded, strict=True))
        contents = [(key, by_key[key]) for key in keys if key in by_key]
        window = TimeRange(start_time, end_time)
        candles = CandleTable.concat(
            table.between(start_time, end_time) for _, (table, _) in contents
        )
        covered = [r for _, (_, obj_covered) in contents for r in obj_covered]
        all_sealed = len(contents) == len(objects) and all(
            self._seals(obj, obj_covered)
            for obj, (_, (_, obj_covered)) in zip(objects, contents, strict=True)
        )
        return SeriesSlice(candles, clip_ranges(covered, window), sealed=all_sealed)

    async def replace_range(
        self,
        exchange_name: str,
        coin_symbol: str,
        timeframe: str,
        start_time: int,
        end_time: int,
        candles: Sequence[Candle],
        *,
        covered: Sequence[TimeRange],
    ) -> int:
        """Drop what is stored in the range and store ``candles`` and ``covered`` instead.

        The bounds are opened first: a repair that stops after that only makes reads fetch
        the range again. Then one conditional read-modify-write per object, in parallel.
        """
        window = TimeRange(start_time, end_time)
        objects = self._paths.objects_spanning(
            exchange_name, coin_symbol, timeframe, start_time, end_time
        )
        await self._update_bounds(
            exchange_name, coin_symbol, timeframe, lambda stored: _opened_to(stored, window)
        )
        table = CandleTable.from_candles(candles)
        window_covered = clip_ranges((TimeRange(*r) for r in covered), window)
        try:
            removed = await self._gather_bounded(
                self._replace_in_object(obj, window, table, window_covered) for obj in objects
            )
        finally:
            # After the objects, so an instance that sees the new marker reads them new.
            self._forget_series(
                self._paths.get_series_prefix(exchange_name, coin_symbol, timeframe)
            )
            await self._bump_generation(exchange_name, coin_symbol, timeframe)
        return sum(removed)

    async def get_sealed_epoch(
        self, exchange_name: str, coin_symbol: str, timeframe: str
    ) -> int | None:
        """A number that changes whenever the series' sealed objects may have changed (a
        repair here, or one elsewhere seen by its marker); None without sealing."""
        if self._seal_after_ms is None:
            return None
        prefix = self._paths.get_series_prefix(exchange_name, coin_symbol, timeframe)
        await self._check_generation(prefix)
        return self._epochs.get(prefix, 0)

    async def get_series_bounds(
        self, exchange_name: str, coin_symbol: str, timeframe: str
    ) -> SeriesBounds:
        """The stored bounds of the series (read every time), or ``SeriesBounds()``."""
        key = self._paths.get_series_bounds_key(exchange_name, coin_symbol, timeframe)
        found = await self._read_object(key)
        return _decode_bounds(key, None if found is None else found[0])

    async def save_series_bounds(
        self,
        exchange_name: str,
        coin_symbol: str,
        timeframe: str,
        bounds: SeriesBounds,
        *,
        clear_empty_from: bool = False,
    ) -> SeriesBounds:
        """Merge ``bounds`` into the stored record with a conditional write; the merged record."""
        return await self._update_bounds(
            exchange_name,
            coin_symbol,
            timeframe,
            lambda stored: stored.merged(bounds, clear_empty_from=clear_empty_from),
        )

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
            table, _covered = await self._load_table(key)
            if len(table):
                return table.last_timestamp()
        return None

    async def list_coins(self, exchange_name: str) -> list[str]:
        """Symbols with anything stored for the exchange (of any price type), sorted."""
        symbols = set()
        for name in await self._list_child_names(self._paths.get_exchange_prefix(exchange_name)):
            try:
                symbols.add(split_series_symbol(self._paths.decode_symbol(name))[0])
            except InvalidPathComponentError:
                logger.warning("ignoring unexpected folder %r in the raw data store", name)
        return sorted(symbols)

    async def list_series(
        self, exchange_name: str, coin_symbol: str | None = None
    ) -> list[SeriesSummary]:
        """The catalog: one listing under the exchange's (or the symbol's) prefix, each
        series' summary, and a read of only the objects it does not vouch for; a changed
        summary is written back best-effort (see :mod:`cbtrade.storage.catalog`)."""
        if coin_symbol is None:
            prefix = self._paths.get_exchange_prefix(exchange_name)
        else:
            # No "/" at the end: the symbol's price types' series ({symbol}@mark) share it.
            prefix = self._paths.get_coin_base_path(exchange_name, coin_symbol)
        by_series: dict[tuple[str, str], dict[str, str | None]] = {}
        summary_etags: dict[str, str | None] = {}
        listed = await self._list_etags(prefix, suffixes=(OBJECT_SUFFIX, _SUMMARY_SUFFIX))
        for key, etag in listed.items():
            if key.endswith(_SUMMARY_SUFFIX):
                summary_etags[key] = etag
                continue
            try:
                parsed = self._paths.parse_path(key)
                symbol, _price = split_series_symbol(parsed.coin_symbol)
            except ValueError:  # InvalidPathComponentError too
                logger.warning("ignoring unexpected object %s in the raw data store", key)
                continue
            if coin_symbol in (None, symbol, parsed.coin_symbol):
                by_series.setdefault((parsed.coin_symbol, parsed.timeframe), {})[key] = etag
        series = sorted(by_series, key=lambda found: (found[0], timeframe_to_ms(found[1])))
        summary_keys = [
            self._paths.get_series_summary_key(exchange_name, symbol, timeframe)
            for symbol, timeframe in series
        ]
        stored = await self._gather_bounded(
            self._read_summary(key, summary_etags.get(key)) for key in summary_keys
        )
        known = [entries for _etag, entries in stored]
        checks = [
            (index, key[len(summary_key) - len(SUMMARY_NAME) :], key, etag)
            for index, summary_key in enumerate(summary_keys)
            for key, etag in by_series[series[index]].items()
        ]
        checked = await self._gather_bounded(
            self._summarize_object(
                key, known[index].get(name), etag, timeframe_to_ms(series[index][1])
            )
            for index, name, key, etag in checks
        )
        entries: list[dict[str, ObjectSummary]] = [{} for _ in series]
        for (index, name, _key, _etag), summary in zip(checks, checked, strict=True):
            if summary is not None:  # None: deleted since listed
                entries[index][name] = summary
        await self._gather_bounded(
            self._save_summary(key, now, etag)
            for key, (etag, before), now in zip(summary_keys, stored, entries, strict=True)
            if now != before
        )
        summaries = [
            summarize_series(
                exchange_name, symbol, timeframe, timeframe_to_ms(timeframe), now.values()
            )
            for (symbol, timeframe), now in zip(series, entries, strict=True)
            if now
        ]
        return sorted(summaries, key=catalog_order)

    async def check_coin_exists(
        self, exchange_name: str, coin_symbol: str, timeframe: str | None = None
    ) -> bool:
        """Whether any object is stored for the symbol (and timeframe, if given)."""
        if timeframe is None:
            prefix = self._paths.get_coin_base_path(exchange_name, coin_symbol) + "/"
        else:
            prefix = self._paths.get_series_prefix(exchange_name, coin_symbol, timeframe)
        return bool(await self._list_keys(prefix, limit=1))

    async def get_document(self, name: str) -> dict[str, Any] | None:
        """The service document ``name`` (read every time), or None."""
        key = self._paths.get_document_key(name)
        found = await self._read_object(key)
        return None if found is None else _decode_document(key, found[0])

    async def update_document(
        self, name: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Write ``change(stored document)`` with a conditional write, retried on a lost race;
        ``change`` returning the stored document (or None) writes nothing. The document as it
        is then stored."""
        key = self._paths.get_document_key(name)

        def update(found: bytes | None) -> tuple[bytes | None, dict[str, Any] | None]:
            stored = None if found is None else _decode_document(key, found)
            document = change(stored)
            if document is None or document == stored:
                return None, stored
            return orjson.dumps(document), document

        return await self._read_modify_write(key, update)

    async def list_documents(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every document whose name starts with ``prefix/``, by name."""
        key_prefix = self._paths.get_document_prefix(prefix)
        keys = await self._list_keys(key_prefix, suffix=DOCUMENT_SUFFIX)
        found = await self._gather_bounded(self._read_object(key) for key in keys)
        root = len(key_prefix) - len(prefix) - 1
        return {
            key[root : -len(DOCUMENT_SUFFIX)]: _decode_document(key, item[0])
            for key, item in zip(keys, found, strict=True)
            if item is not None
        }

    # -- keyed objects, for stores of other series kinds over the same backend (funding) ----

    async def read_object_if_changed(
        self, key: str, etag: str | None
    ) -> tuple[bytes | None, str] | None:
        """The object's bytes and ETag; ``(None, etag)`` if it still has ``etag``; None if
        it does not exist."""
        return await self._read_object_if_changed(key, etag)

    async def list_object_etags(self, prefix: str) -> dict[str, str | None]:
        """The data objects under ``prefix``, each with its ETag if the listing tells it."""
        return await self._list_etags(prefix)

    async def rewrite_object(
        self, key: str, modify: Callable[[bytes | None], tuple[bytes | None, _T]]
    ) -> _T:
        """Rewrite an object atomically with the conditional read-modify-write loop (see
        :meth:`_read_modify_write`): ``modify`` gets its bytes (None if absent) and returns
        the bytes to write (None: leave it) and the result."""
        return await self._read_modify_write(key, modify)

    async def gather_bounded(self, awaitables: Iterable[Awaitable[_T]]) -> list[_T]:
        """Await all, at most the store's concurrency at once; the first failure cancels
        the rest."""
        return await self._gather_bounded(awaitables)

    # -- internals ---------------------------------------------------------------------------

    async def _keys_to_load(self, keys: list[str]) -> list[tuple[str, str | None]]:
        """Which of a read's ``keys`` to load, in order, each with its ETag if a listing gave it.

        A folder that holds at least LIST_FOLDER_AT of the keys is listed once, under the
        longest prefix its keys share (a listing answers every object under its prefix, and
        costs by what it answers): keys missing from the listing are skipped, and cached
        objects whose listed ETag still matches need no request. If more than
        ``concurrency`` folders qualify, all the keys are listed at once, under their shared
        prefix.
        """
        by_folder: dict[str, list[str]] = {}
        for key in keys:
            by_folder.setdefault(key.rpartition("/")[0] + "/", []).append(key)
        groups = [in_folder for in_folder in by_folder.values() if len(in_folder) >= LIST_FOLDER_AT]
        if len(groups) > self._concurrency:
            groups = [keys]
        listings = await self._gather_bounded(
            # By characters, not path parts: a listing takes any prefix of a name.
            self._list_etags(os.path.commonprefix(group))  # noqa: RUF071
            for group in groups
        )
        listed = {key: etag for listing in listings for key, etag in listing.items()}
        in_listings = {key for group in groups for key in group}
        to_load: list[tuple[str, str | None]] = []
        for key in keys:
            if key not in in_listings:
                to_load.append((key, None))
            elif key in listed:
                to_load.append((key, listed[key]))
            else:
                self._forget(key)  # deleted since it was cached
        return to_load

    async def _load_table(
        self, key: str, *, listed_etag: str | None = None
    ) -> tuple[CandleTable, list[TimeRange]]:
        """The candles and coverage of an object, decoded once per ETag; empty if absent.

        ``listed_etag``, the object's ETag from a listing just made, spares the request when
        it matches the cached object's.
        """
        cached = self._decoded.get(key)
        if cached is not None and cached.etag == listed_etag:
            self._decoded.move_to_end(key)
            return cached.table, cached.covered
        parsed = self._paths.parse_path(key)
        series_prefix = self._paths.get_series_prefix(*parsed[:3])
        epoch = self._epochs.get(series_prefix, 0)
        found = await self._read_object_if_changed(key, None if cached is None else cached.etag)
        if found is None:
            self._forget(key)
            return CandleTable.empty(), []
        data, etag = found
        if cached is not None and cached.etag == etag:
            table, covered = cached.table, cached.covered
        else:
            if data is None:  # only a backend's bug could say "unchanged" for an unknown ETag
                raise StorageError(f"{key}: reported unchanged but not cached")
            table, covered = _decode(key, data)
            table = table.with_source((key, etag))
        if self._epochs.get(series_prefix, 0) != epoch:
            # A repair dropped the series while this read was in flight: what it read may be
            # from before the repair. This read may serve it (it began first); the cache
            # must not keep it (a sealed entry is served with no request until the next
            # repair-marker check).
            return table, covered
        # Concurrent loads may have evicted or replaced the entry while this one awaited.
        self._forget(key)
        period = parsed.period
        full_until = period.end if covered == [period] else None
        self._decoded[key] = _Decoded(etag, table, covered, full_until)
        self._decoded_bytes += table.nbytes
        while self._decoded_bytes > DECODED_CACHE_BYTES and len(self._decoded) > 1:
            self._forget(next(iter(self._decoded)))
        return table, covered

    async def _summarize_object(
        self, key: str, known: ObjectSummary | None, listed_etag: str | None, timeframe_ms: int
    ) -> ObjectSummary | None:
        """The summary of the object ``key``: ``known`` while the object has its ETag, else
        made afresh (from the decoded cache if it holds the listed version); None if the
        object is gone. Without a listed ETag the object is read to learn its ETag."""
        if known is not None and listed_etag is not None and known.etag == listed_etag:
            return known
        cached = self._decoded.get(key)
        if cached is not None and listed_etag is not None and cached.etag == listed_etag:
            return summarize_object(cached.etag, cached.table, cached.covered, timeframe_ms)
        found = await self._read_object_if_changed(key, None if known is None else known.etag)
        if found is None:
            return None
        data, etag = found
        if known is not None and known.etag == etag:
            return known
        if data is None:  # only a backend's bug could say "unchanged" for another ETag
            raise StorageError(f"{key}: reported unchanged but not summarised")
        table, covered = _decode(key, data)
        return summarize_object(etag, table, covered, timeframe_ms)

    async def _read_summary(
        self, key: str, listed_etag: str | None
    ) -> tuple[str | None, dict[str, ObjectSummary]]:
        """A series' summary entries and the document's ETag (None if there is none): kept
        from an earlier read while the listing shows its ETag, else read."""
        kept = self._summaries.get(key)
        if kept is not None and listed_etag is not None and kept[0] == listed_etag:
            self._summaries.move_to_end(key)
            return kept
        self._forget_summary(key)
        found = await self._read_object(key)
        if found is None:
            return None, {}
        read = found[1], decode_summary(key, found[0])
        if listed_etag is not None:  # else no listing could vouch for it: not kept
            self._forget_summary(key)  # concurrent requests may have kept it meanwhile
            self._summaries[key] = read
            self._summary_entries += len(read[1])
            while self._summary_entries > SUMMARY_ENTRIES_KEPT and len(self._summaries) > 1:
                self._forget_summary(next(iter(self._summaries)))
        return read

    def _forget_summary(self, key: str) -> None:
        """Drop a kept series summary, if it is kept."""
        kept = self._summaries.pop(key, None)
        if kept is not None:
            self._summary_entries -= len(kept[1])

    async def _save_summary(
        self, key: str, entries: dict[str, ObjectSummary], etag: str | None
    ) -> None:
        """Write a series' summary if it is as read (``etag``); a lost race or a failed
        write only leaves the work to the next catalog request."""
        self._forget_summary(key)  # its new ETag is learnt by reading it
        try:
            await self._write_object(key, encode_summary(entries), etag=etag)
        except PreconditionFailedError:
            logger.debug("series summary %s changed since read; not overwritten", key)
        except StorageError as exc:
            logger.warning("series summary %s not saved (%s)", key, exc)

    def _forget(self, key: str) -> None:
        """Drop ``key`` from the decoded cache, if it is there."""
        entry = self._decoded.pop(key, None)
        if entry is not None:
            self._decoded_bytes -= entry.table.nbytes

    def _seal_horizon(self) -> int | None:
        """Objects whose period ended before this are sealed once wholly covered."""
        return None if self._seal_after_ms is None else self._clock() - self._seal_after_ms

    def _sealed_entry(self, key: str) -> _Decoded | None:
        """The cached object, if it is sealed (served with no request)."""
        entry = self._decoded.get(key)
        horizon = self._seal_horizon()
        if entry is None or entry.full_until is None or horizon is None:
            return None
        if entry.full_until > horizon:
            return None
        self._decoded.move_to_end(key)
        return entry

    def _seals(self, obj: RawDataObject, covered: list[TimeRange]) -> bool:
        """Whether ``obj`` with ``covered`` is sealed."""
        horizon = self._seal_horizon()
        return horizon is not None and obj.period.end <= horizon and covered == [obj.period]

    async def _check_generation(self, series_prefix: str) -> None:
        """Read the series' repair marker if not read for ``generation_check_seconds``; when it
        has changed (or is read for the first time), drop the series' cached objects."""
        now = time.monotonic()
        known = self._generations.get(series_prefix)
        if known is not None and now - known[1] < self._generation_check_seconds:
            return
        key = series_prefix + GENERATION_NAME
        found = await self._read_object_if_changed(key, None if known is None else known[0])
        etag = None if found is None else found[1]
        if known is None or etag != known[0]:
            self._forget_series(series_prefix)
        self._generations[series_prefix] = (etag, now)

    def _forget_series(self, series_prefix: str) -> None:
        """Drop the series' cached objects; anything derived from them is stale (epoch)."""
        for cached in [k for k in self._decoded if k.startswith(series_prefix)]:
            self._forget(cached)
        self._epochs[series_prefix] = self._epochs.get(series_prefix, 0) + 1

    async def _bump_generation(self, exchange_name: str, coin_symbol: str, timeframe: str) -> None:
        """Rewrite the series' repair marker, so other instances drop their cached objects."""
        key = self._paths.get_series_prefix(exchange_name, coin_symbol, timeframe)
        key += GENERATION_NAME

        def bump(found: bytes | None) -> tuple[bytes, None]:
            previous = orjson.loads(found).get("generation", 0) if found else 0
            return orjson.dumps({"generation": previous + 1, "at": self._clock()}), None

        await self._read_modify_write(key, bump)

    async def _update_object(
        self, obj: RawDataObject, candles: CandleTable, covered: list[TimeRange]
    ) -> None:
        """Merge ``candles`` and ``covered`` into the object (newer candles win); this
        instance's cached copy is dropped, as a sealed one is not revalidated."""

        def merge(found: bytes | None) -> tuple[bytes | None, None]:
            table, old_covered = _decode(obj.key, found)
            new_covered = merge_ranges([*old_covered, *covered])
            if not len(candles) and new_covered == old_covered:
                return None, None
            return _encode(table.merge(candles), new_covered), None

        await self._read_modify_write(obj.key, merge)
        self._forget(obj.key)

    async def _replace_in_object(
        self, obj: RawDataObject, window: TimeRange, candles: CandleTable, covered: list[TimeRange]
    ) -> int:
        """Replace the object's candles and coverage within ``window``; how many were dropped."""
        part = TimeRange(max(window.start, obj.period.start), min(window.end, obj.period.end))
        new_candles = candles.between(*part)
        new_covered = clip_ranges(covered, part)
        before = TimeRange(obj.period.start, part.start)
        after = TimeRange(part.end, obj.period.end)

        def replace(found: bytes | None) -> tuple[bytes | None, int]:
            table, old_covered = _decode(obj.key, found)
            removed = len(table.between(*part))
            result_covered = merge_ranges(
                [*clip_ranges(old_covered, before), *new_covered, *clip_ranges(old_covered, after)]
            )
            if not removed and not len(new_candles) and result_covered == old_covered:
                return None, 0
            kept_before, kept_after = table.between(*before), table.between(*after)
            result = CandleTable.concat([kept_before, new_candles, kept_after])
            return _encode(result, result_covered), removed

        return await self._read_modify_write(obj.key, replace)

    async def _update_bounds(
        self,
        exchange_name: str,
        coin_symbol: str,
        timeframe: str,
        change: Callable[[SeriesBounds], SeriesBounds],
    ) -> SeriesBounds:
        """Write ``change(stored bounds)`` if it differs; the record as it is then stored."""
        key = self._paths.get_series_bounds_key(exchange_name, coin_symbol, timeframe)

        def update(found: bytes | None) -> tuple[bytes | None, SeriesBounds]:
            stored = _decode_bounds(key, found)
            bounds = change(stored)
            return (None if bounds == stored else orjson.dumps(bounds._asdict())), bounds

        return await self._read_modify_write(key, update)

    async def _read_modify_write(
        self, key: str, modify: Callable[[bytes | None], tuple[bytes | None, _T]]
    ) -> _T:
        """Rewrite an object atomically: ``modify``'s bytes, if it is unchanged since read.

        ``modify`` gets the object's bytes (None if absent) and returns the bytes to write
        (None to leave the object as it is) and the result to return. A lost race re-reads
        and calls ``modify`` again, after a jittered backoff; StorageConflictError once
        ``write_attempts`` are spent.
        """
        for attempt in range(self._write_attempts):
            found = await self._read_object(key)
            data, result = modify(None if found is None else found[0])
            if data is None:
                return result
            try:
                await self._write_object(key, data, etag=None if found is None else found[1])
            except PreconditionFailedError:
                cap = min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt)
                await asyncio.sleep(random.uniform(0, cap))
            else:
                return result
        raise StorageConflictError(
            f"{key}: still changed by concurrent writers after {self._write_attempts} attempts"
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


def encode_columns(
    columns: pa.Table, schema: pa.Schema, covered: list[TimeRange], *, object_format: bytes
) -> bytes:
    """An object of ``columns`` (in ``schema``) and their coverage: an Arrow IPC stream with
    zstd buffers and the ``cbtrade.format`` and ``cbtrade.covered`` schema metadata."""
    schema = schema.with_metadata(
        {_FORMAT_KEY: object_format, _COVERED_KEY: orjson.dumps(covered, default=list)}
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema, options=_IPC_OPTIONS) as writer:
        writer.write_table(columns.replace_schema_metadata(schema.metadata))
    return bytes(sink.getvalue())


def decode_columns(
    key: str, data: bytes, *, object_format: bytes
) -> tuple[pa.Table, list[TimeRange]]:
    """The columns and coverage of an object made by :func:`encode_columns` with
    ``object_format``; StorageCorruptError if it is not one."""
    try:
        arrow = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
        metadata = arrow.schema.metadata or {}
        if metadata.get(_FORMAT_KEY) != object_format:
            raise ValueError(f"unknown format {metadata.get(_FORMAT_KEY)!r}")
        covered = [TimeRange(start, end) for start, end in orjson.loads(metadata[_COVERED_KEY])]
        if any(type(start) is not int or type(end) is not int for start, end in covered):
            raise ValueError("bad coverage")
        return arrow, covered
    except (pa.ArrowException, ValueError, TypeError, KeyError) as exc:
        raise StorageCorruptError(f"{key}: not a stored object ({exc})") from None


def _encode(table: CandleTable, covered: list[TimeRange]) -> bytes:
    return encode_columns(table.arrow, CANDLE_SCHEMA, covered, object_format=OBJECT_FORMAT)


def _decode(key: str, data: bytes | None) -> tuple[CandleTable, list[TimeRange]]:
    """Candles and coverage of a stored object (empty if absent); StorageCorruptError if it
    is not one."""
    if data is None:
        return CandleTable.empty(), []
    arrow, covered = decode_columns(key, data, object_format=OBJECT_FORMAT)
    try:
        return CandleTable.from_arrow(arrow), covered
    except (pa.ArrowException, ValueError, TypeError, KeyError) as exc:
        raise StorageCorruptError(f"{key}: not a raw data object ({exc})") from None


def _decode_document(key: str, data: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise StorageCorruptError(f"{key}: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise StorageCorruptError(f"{key}: not a JSON object")
    return document


def _decode_bounds(key: str, data: bytes | None) -> SeriesBounds:
    """A stored series bounds record (``SeriesBounds()`` if absent); StorageCorruptError if it
    is not one."""
    if data is None:
        return SeriesBounds()
    try:
        fields = orjson.loads(data)
        if not isinstance(fields, dict) or fields.keys() != set(SeriesBounds._fields):
            raise ValueError(f"fields are not {', '.join(SeriesBounds._fields)}")
        bounds = SeriesBounds(**fields)
        for value in bounds:
            if value is not None and not (type(value) is int and 0 <= value < MAX_TIMESTAMP):
                raise ValueError(f"{value!r} is not epoch ms")
        if bounds.empty_before is None:
            raise ValueError("empty_before is null")
        bounds.check_consistent()  # InvalidInputError is a ValueError
    except ValueError as exc:
        raise StorageCorruptError(f"{key}: not a series bounds record ({exc})") from None
    return bounds


def _opened_to(bounds: SeriesBounds, window: TimeRange) -> SeriesBounds:
    """``bounds`` no longer claiming that any part of ``window`` is empty."""
    if window.start < bounds.empty_before:
        bounds = bounds._replace(empty_before=window.start, first_candle=None)
    if bounds.empty_from is not None and window.end > bounds.empty_from:
        bounds = bounds._replace(empty_from=None)
    return bounds
