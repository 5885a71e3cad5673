"""The series catalog: what is stored of each series, summarised without reading candles.

A catalog answers, per series (exchange, symbol, timeframe): the first and last stored
candle, how many candles, the ranges between them never fetched (``not_covered``) and the
covered slots that hold no candle (``missing_candles``: quiet intervals, when the exchange
had no trades). It is built from per-object summaries, kept in a small JSON document beside
the series' objects (``summary.json``)::

    {"format": 1, "objects": {"2024/01.arrow": {"etag": "...", "candles": 8928,
     "first": ms, "last": ms, "covered": [[start, end], ...], "missing": 0}, ...}}

An entry is valid for as long as its object has the entry's ETag: a catalog request lists
the objects with their ETags, reuses the entries whose ETag the listing shows, reads only the
objects that are new or changed (typically the newest, open one) and drops entries whose
object is gone. Saves never touch the summary; the catalog writes it back, conditionally and
best-effort (a lost race leaves the work to the next request). Where a listing carries no
ETags (local files), each object is validated by a read instead, and only a changed one is
decoded: never is an entry served for an object other than the one it summarised.

This module holds the summary logic; the reads and writes are
:meth:`cbtrade.storage.object_storage.ObjectRawDataStorage.list_series`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from itertools import pairwise
from typing import Any, NamedTuple

import orjson

from cbtrade.calendar_timeframes import CandleSpan, calendar_span
from cbtrade.candle_table import CandleTable
from cbtrade.models import TimeRange
from cbtrade.price_types import PRICE_TYPES, split_series_symbol
from cbtrade.storage.interfaces import SeriesSummary
from cbtrade.time_ranges import clip_ranges, merge_ranges, subtract_ranges
from cbtrade.timeframes import TIMEFRAME_MS

logger = logging.getLogger(__name__)

SUMMARY_FORMAT = 1


class ObjectSummary(NamedTuple):
    """What one stored object holds, as of its ETag ``etag``."""

    etag: str
    candles: int
    """Candles in the object."""
    first: int | None
    """Open time of its first candle (None if it holds none)."""
    last: int | None
    """Open time of its last candle (None if it holds none)."""
    covered: list[TimeRange]
    """Its fetched ranges, merged and ascending."""
    missing: int
    """Slots of ``covered`` that hold no candle."""


def summarize_object(
    etag: str, table: CandleTable, covered: list[TimeRange], timeframe_ms: int
) -> ObjectSummary:
    """The summary of an object holding ``table`` and ``covered``, as of ``etag``."""
    covered = merge_ranges(covered)
    slots = sum(_slots(r, timeframe_ms) for r in covered)
    missing = slots - sum(len(table.between(r.start, r.end)) for r in covered)
    first, last = table.first_timestamp(), table.last_timestamp()
    return ObjectSummary(etag, len(table), first, last, covered, missing)


def summarize_series(
    exchange_name: str,
    coin_symbol: str,
    timeframe: str,
    timeframe_ms: int,
    objects: Iterable[ObjectSummary],
) -> SeriesSummary:
    """The catalog entry of a series from the summaries of all its objects."""
    objects = list(objects)
    firsts = [o.first for o in objects if o.first is not None]
    lasts = [o.last for o in objects if o.last is not None]
    candles = sum(o.candles for o in objects)
    if not firsts or not lasts:
        return SeriesSummary(exchange_name, coin_symbol, timeframe, None, None, candles, [], 0)
    first, last = min(firsts), max(lasts)
    life = TimeRange(first, last + timeframe_ms)
    covered = merge_ranges(r for o in objects for r in o.covered)
    # Covered slots before the first candle or after the last hold none by definition (the
    # listing was later, the market closed): they are not missing.
    outside = sum(_slots(r, timeframe_ms) for r in covered) - sum(
        _slots(r, timeframe_ms) for r in clip_ranges(covered, life)
    )
    missing = sum(o.missing for o in objects) - outside
    return SeriesSummary(
        exchange_name,
        coin_symbol,
        timeframe,
        first,
        last,
        candles,
        subtract_ranges(life, covered),
        missing,
    )


def catalog_order(summary: SeriesSummary) -> tuple[str, int, int]:
    """Catalog entries by symbol, price type and candle length."""
    symbol, price = split_series_symbol(summary.coin_symbol)
    span = calendar_span(summary.timeframe)
    length = TIMEFRAME_MS.get(summary.timeframe) or (span.max_ms if span else 0)
    return symbol, PRICE_TYPES.index(price), length


def summarize_calendar_series(
    exchange_name: str,
    coin_symbol: str,
    timeframe: str,
    span: CandleSpan,
    candles: CandleTable,
    covered: list[TimeRange],
) -> SeriesSummary:
    """The catalog entry of a series of an exchange's own calendar candles, from all of its
    candles and coverage: its quiet periods are counted on the exchange's grid, by the
    candles' length, between consecutive candles whose interval was fetched."""
    stamps = candles.arrow.column("timestamp").to_pylist()
    if not stamps:
        return SeriesSummary(exchange_name, coin_symbol, timeframe, None, None, 0, [], 0)
    missing = sum(
        # A first candle stamped at a listing may open less than a period before the next.
        max(span.periods(earlier, later) - 1, 0)
        for earlier, later in pairwise(stamps)
        if clip_ranges(covered, TimeRange(earlier, later)) == [TimeRange(earlier, later)]
    )
    life = TimeRange(stamps[0], stamps[-1] + 1)
    return SeriesSummary(
        exchange_name,
        coin_symbol,
        timeframe,
        stamps[0],
        stamps[-1],
        len(stamps),
        subtract_ranges(life, covered),
        missing,
    )


def _slots(r: TimeRange, timeframe_ms: int) -> int:
    return max(r.end - r.start, 0) // timeframe_ms


def decode_summary(key: str, data: bytes | None) -> dict[str, ObjectSummary]:
    """The entries of a stored summary document by object name; empty if it is absent or not
    one (it is only a cache: the catalog then rebuilds it)."""
    if data is None:
        return {}
    try:
        document = orjson.loads(data)
        if document.get("format") != SUMMARY_FORMAT:
            raise ValueError(f"unknown format {document.get('format')!r}")
        return {
            name: ObjectSummary(
                str(entry["etag"]),
                int(entry["candles"]),
                _optional_int(entry["first"]),
                _optional_int(entry["last"]),
                [TimeRange(int(start), int(end)) for start, end in entry["covered"]],
                int(entry["missing"]),
            )
            for name, entry in document["objects"].items()
        }
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        logger.warning("rebuilding the unreadable series summary %s (%s)", key, exc)
        return {}


def encode_summary(entries: Mapping[str, ObjectSummary]) -> bytes:
    """The summary document of ``entries`` (by object name)."""
    objects: dict[str, Any] = {name: entry._asdict() for name, entry in sorted(entries.items())}
    return orjson.dumps({"format": SUMMARY_FORMAT, "objects": objects}, default=list)


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
