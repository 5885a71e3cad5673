"""Derived timeframes: their names, their buckets, and the base they are derived from.

A timeframe is a whole number of a unit: ``Nm``, ``Nh``, ``Nd`` (fixed lengths, buckets at
epoch multiples of the length, as exchanges align them), ``Nw`` (weeks from Monday 00:00 UTC,
buckets at multiples of N weeks from Monday 1970-01-05) and ``NM`` (calendar months, buckets
at multiples of N months from January 1970: ``3M`` are quarters). One that the exchange
offers is fetched natively (the exchange's own calendar timeframes, ``3d``, ``1w``, ``1M``,
on its own grid: :mod:`~cbtrade.calendar_timeframes`); one that it does not offer is derived
from the longest fixed timeframe it offers (and the service serves) that tiles every bucket.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from cbtrade.calendar_timeframes import CandleSpan, calendar_span
from cbtrade.errors import InvalidTimeframeError
from cbtrade.timeframes import TIMEFRAME_MS, month_of, month_start, supported_timeframes

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
MONDAY_OFFSET_MS = 4 * DAY_MS
"""1970-01-01 was a Thursday: weeks start 4 days after the epoch, plus whole weeks."""
_FIXED_UNIT_MS = {"m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}
TIMEFRAME_PATTERN = r"^[1-9][0-9]{0,3}[mhdwM]$"
_TIMEFRAME = re.compile(TIMEFRAME_PATTERN)
DERIVABLE_TEXT = (
    "whole multiples of an offered timeframe (Nm, Nh, Nd), weeks from Monday 00:00 UTC (Nw) "
    "and calendar months (NM)"
)


class Buckets(ABC):
    """The bucket boundaries of a timeframe: times in epoch ms UTC (from 1970 on)."""

    @abstractmethod
    def floor(self, timestamp: int) -> int:
        """The start of the bucket that holds ``timestamp``."""

    @abstractmethod
    def advance(self, start: int, count: int) -> int:
        """The start of the bucket ``count`` buckets after the one starting at ``start``."""

    @abstractmethod
    def starts(self, lo: int, hi: int) -> Any:
        """The bucket starts in ``[lo, hi)``, ascending, as an int64 numpy array."""

    @abstractmethod
    def tiled_by(self, base_ms: int) -> bool:
        """Whether candles of ``base_ms`` (at epoch multiples) tile every bucket."""

    def ceil(self, timestamp: int) -> int:
        """The first bucket start at or after ``timestamp``."""
        start = self.floor(timestamp)
        return start if start == timestamp else self.advance(start, 1)


@dataclass(frozen=True)
class FixedBuckets(Buckets):
    """Buckets of ``length`` ms starting at ``offset`` plus multiples of ``length``."""

    length: int
    offset: int = 0

    def floor(self, timestamp: int) -> int:
        return timestamp - (timestamp - self.offset) % self.length

    def advance(self, start: int, count: int) -> int:
        return start + count * self.length

    def starts(self, lo: int, hi: int) -> Any:
        return np.arange(self.ceil(lo), hi, self.length, dtype=np.int64)

    def tiled_by(self, base_ms: int) -> bool:
        return self.length % base_ms == 0 and self.offset % base_ms == 0


@dataclass(frozen=True)
class MonthBuckets(Buckets):
    """Buckets of ``months`` calendar months, the first from January 1970."""

    months: int

    def floor(self, timestamp: int) -> int:
        month = month_of(timestamp)
        return month_start(month - month % self.months)

    def advance(self, start: int, count: int) -> int:
        month = month_of(start)
        return month_start(month + count * self.months)

    def starts(self, lo: int, hi: int) -> Any:
        first = month_of(self.ceil(lo))
        months = np.arange(first, first + self._months_until(hi, first), self.months)
        starts = months.astype("datetime64[M]").astype("datetime64[ms]").astype(np.int64)
        return starts[starts < hi]

    def tiled_by(self, base_ms: int) -> bool:
        return DAY_MS % base_ms == 0

    def _months_until(self, hi: int, first: int) -> int:
        last = month_of(hi)
        return max(last - first + 1, 0)


def buckets_of(timeframe: str) -> Buckets | None:
    """The buckets of ``timeframe`` (``Nm``, ``Nh``, ``Nd``, ``Nw`` or ``NM``); None if it is
    not one."""
    if not isinstance(timeframe, str) or not _TIMEFRAME.match(timeframe):
        return None
    count, unit = int(timeframe[:-1]), timeframe[-1]
    if unit == "M":
        return MonthBuckets(count)
    if unit == "w":
        return FixedBuckets(count * WEEK_MS, MONDAY_OFFSET_MS)
    return FixedBuckets(count * _FIXED_UNIT_MS[unit])


class TimeframePlan(NamedTuple):
    """How a timeframe is served for an exchange: natively, or derived from ``base``."""

    timeframe: str
    base: str
    """The timeframe fetched from the exchange: ``timeframe`` itself when native."""
    buckets: Buckets | None
    """The buckets ``base`` candles are aggregated into; None when native."""
    span: CandleSpan | None = None
    """The candles' span, for an exchange's own calendar timeframe (``1w``, ``1M``, ``3d``
    where offered): stored by their open times on the exchange's own grid. None otherwise."""

    @property
    def derived_from(self) -> str | None:
        """The base timeframe of a derived one; None for a native one."""
        return None if self.buckets is None else self.base


def _calendar_order(timeframe: str) -> int:
    span = calendar_span(timeframe)
    return 0 if span is None else span.max_ms


def plan_timeframe(
    timeframe: str, *, exchange: str, offered: Iterable[str] | None
) -> TimeframePlan:
    """How ``exchange`` serves ``timeframe``, given the timeframes it ``offered`` (None: the
    plugin cannot tell; then every service timeframe counts as offered).

    Raises InvalidTimeframeError naming what is served and what can be derived: for a
    timeframe that is not a whole number of a unit, one that no served timeframe tiles, and
    one the exchange offers natively that the service does not serve (an offered timeframe
    is never derived: its buckets might not be the exchange's). An offered calendar
    timeframe (``Nd``, ``Nw``, ``NM`` beyond the fixed grids) is native, on the exchange's
    own grid."""
    offered_set = set(TIMEFRAME_MS) if offered is None else set(offered)
    if timeframe in offered_set:
        if timeframe in TIMEFRAME_MS:
            return TimeframePlan(timeframe, timeframe, None)
        span = calendar_span(timeframe)
        if span is not None:
            return TimeframePlan(timeframe, timeframe, None, span)
        raise InvalidTimeframeError(
            f"{exchange} offers {timeframe!r} candles natively, but this service does not "
            f"serve them; {_served(offered_set)}"
        )
    buckets = buckets_of(timeframe)
    if buckets is None:
        raise InvalidTimeframeError(
            f"unsupported timeframe {timeframe!r}: a timeframe is a whole number (1 to 9999) "
            f"of m, h, d, w or M, such as 8h, 1w or 1M; for {exchange}, {_served(offered_set)}"
        )
    bases = [
        (TIMEFRAME_MS[base], base)
        for base in supported_timeframes(offered_set)
        if buckets.tiled_by(TIMEFRAME_MS[base])
    ]
    if not bases:
        raise InvalidTimeframeError(
            f"{exchange} does not offer {timeframe!r} candles and none it offers divides "
            f"them; {_served(offered_set)}"
        )
    return TimeframePlan(timeframe, max(bases)[1], buckets)


def _served(offered: set[str]) -> str:
    """What an exchange that offers ``offered`` is served in, natively and derived."""
    calendar = sorted((t for t in offered if calendar_span(t)), key=_calendar_order)
    served = ", ".join([*supported_timeframes(offered), *calendar])
    served = served or "none that this service supports"
    return f"served natively: {served}; derived: {DERIVABLE_TEXT}"
