"""An exchange's own calendar timeframes: the ``Nd``, ``Nw`` and ``NM`` candles it offers
beyond the service's fixed grids (Binance ``3d``, ``1w``, ``1M``; Crypto.com ``1w``, ``2w``,
``1M``; Kraken ``1w``).

Each exchange aligns these its own way (weeks from Monday on one, from Thursday on another,
``3d`` from some anchor, months perhaps in its own time zone), so the service assumes no
grid: it stores the candles by the open times the exchange gives them
(:mod:`~cbtrade.storage.calendar_store`) and needs only a candle's length, which the
timeframe says, to tell whether a candle is closed. A month's length depends on the month:
a monthly candle ends as many calendar months after its open as the timeframe says, at the
same distance from the month's boundary as it opened (a candle opening at 16:00 UTC on the
last day of a month, a month in UTC+8, ends at 16:00 UTC on the last day of the next).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

from cbtrade.timeframes import TIMEFRAME_MS, month_of, month_start

DAY_MS = 86_400_000
_CALENDAR = re.compile(r"^([1-9][0-9]{0,3})([dwM])$")
_UNIT_DAYS = {"d": 1, "w": 7}
AVERAGE_MONTH_MS = 365.2425 * DAY_MS / 12
MAX_ZONE_OFFSET_MS = 15 * 3_600_000
"""Months may start in an exchange's own time zone: at most this far from 00:00 UTC (time
zones run from UTC-12 to UTC+14)."""


class CandleSpan(ABC):
    """How long a candle of one calendar timeframe lasts, from its open time."""

    @property
    @abstractmethod
    def min_ms(self) -> int:
        """The shortest such candle: a window of ``n * min_ms`` holds at most ``n`` opens."""

    @property
    @abstractmethod
    def max_ms(self) -> int:
        """The longest such candle."""

    @abstractmethod
    def end(self, open_time: int) -> int:
        """When the candle opening at ``open_time`` closes (epoch ms UTC)."""

    @abstractmethod
    def unclosed_from(self, moment: int) -> int:
        """Where a read up to ``moment`` stops, so that the forming candle is not asked for
        on every read: no candle opening at or after it has closed by ``moment`` (but for a
        month starting in an exchange's time zone east of UTC, which is served up to
        MAX_ZONE_OFFSET_MS late)."""

    @abstractmethod
    def periods(self, earlier: int, later: int) -> int:
        """How many candle periods lie from the open ``earlier`` to the open ``later``."""

    def final_before(self, moment: int) -> int:
        """Every candle opening before this has closed by ``moment``, whatever its grid."""
        return moment - self.max_ms + 1


@dataclass(frozen=True)
class FixedSpan(CandleSpan):
    """Candles of a fixed length (days, weeks)."""

    length: int

    @property
    def min_ms(self) -> int:
        return self.length

    @property
    def max_ms(self) -> int:
        return self.length

    def end(self, open_time: int) -> int:
        return open_time + self.length

    def unclosed_from(self, moment: int) -> int:
        return moment - self.length + 1

    def periods(self, earlier: int, later: int) -> int:
        return round((later - earlier) / self.length)


@dataclass(frozen=True)
class MonthSpan(CandleSpan):
    """Candles of ``months`` calendar months."""

    months: int

    @property
    def min_ms(self) -> int:
        return self.months * 28 * DAY_MS

    @property
    def max_ms(self) -> int:
        return self.months * 31 * DAY_MS

    def end(self, open_time: int) -> int:
        month = month_of(open_time)
        if month_start(month + 1) - open_time < open_time - month_start(month):
            month += 1  # it opened before its month began, in the exchange's time zone
        return month_start(month + self.months) + open_time - month_start(month)

    def periods(self, earlier: int, later: int) -> int:
        return round((later - earlier) / (self.months * AVERAGE_MONTH_MS))

    def unclosed_from(self, moment: int) -> int:
        # The month that ends after ``moment`` (in UTC) may open up to MAX_ZONE_OFFSET_MS
        # early in its exchange's time zone; the month before it, in a zone east of UTC,
        # closes up to that much before the UTC month does and waits until then.
        return month_start(month_of(moment) - self.months + 1) - MAX_ZONE_OFFSET_MS


def calendar_span(timeframe: str) -> CandleSpan | None:
    """The span of a calendar timeframe (``Nd``, ``Nw`` or ``NM`` beyond the service's fixed
    grids); None for any other."""
    match = _CALENDAR.match(timeframe) if isinstance(timeframe, str) else None
    if match is None or timeframe in TIMEFRAME_MS:
        return None
    count, unit = int(match.group(1)), match.group(2)
    if unit == "M":
        return MonthSpan(count)
    return FixedSpan(count * _UNIT_DAYS[unit] * DAY_MS)
