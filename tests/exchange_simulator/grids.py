"""Candle grids: when each exchange's candles of a timeframe open and close.

The service's fixed timeframes (``cbtrade.timeframes.TIMEFRAME_MS``) open at epoch multiples
of their length on every exchange. An exchange's own calendar timeframes follow its own grid,
and these grids deliberately differ between exchanges, so the service is shown not to assume
one:

- Binance ``1w`` opens Mondays 00:00 UTC (seen in Binance's /api/v3/klines documentation,
  whose sample kline opens 1499040000000, Monday 2017-07-03, and closes 1499644799999, a week
  less 1 ms later); ``3d`` at epoch multiples of 3 days and ``1M`` at calendar months (UTC)
  are assumptions.
- Crypto.com ``1w`` opens Mondays 00:00 UTC, ``2w`` every 14 days from Monday 1970-01-05,
  ``1M`` at calendar months: assumptions (no evidence found of how Crypto.com aligns them).
- Kraken ``1w`` (interval 10080) opens at epoch multiples of 7 days, Thursdays 00:00 UTC
  (1970-01-01 was a Thursday): an assumption. Kraken's interval 21600 (ccxt's ``2w``, 15
  days) is deliberately not simulated: the service does not serve it natively.
"""

from __future__ import annotations

import calendar
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache

from cbtrade.timeframes import timeframe_to_ms

DAY = 86_400_000
WEEK = 7 * DAY
FIRST_MONDAY = 4 * DAY  # 1970-01-05T00:00:00Z


class Grid(ABC):
    """Consecutive candle periods, numbered by a period index (0 at or just after the
    epoch); a candle closes when the next one opens."""

    @abstractmethod
    def index(self, timestamp: int) -> int:
        """The index of the period that holds ``timestamp``."""

    @abstractmethod
    def open_time(self, index: int) -> int:
        """When period ``index`` opens."""

    def opens(self, first: int, last: int, *, backwards: bool = False) -> Iterator[int]:
        """The open times ``t`` with ``first <= t <= last``, ascending (or backwards), lazily."""
        low = self.index(first)
        if self.open_time(low) < first:
            low += 1
        high = self.index(last)
        indexes = range(high, low - 1, -1) if backwards else range(low, high + 1)
        return map(self.open_time, indexes)

    def close_time(self, open_time: int) -> int:
        """When the candle opening at ``open_time`` closes: the next one's open time."""
        return self.open_time(self.index(open_time) + 1)


class EveryGrid(Grid):
    """Periods of ``length`` ms, opening at ``origin`` plus its multiples."""

    def __init__(self, length: int, origin: int = 0) -> None:
        self.length = length
        self.origin = origin

    def index(self, timestamp: int) -> int:
        return (timestamp - self.origin) // self.length

    def open_time(self, index: int) -> int:
        return self.origin + index * self.length


class MonthGrid(Grid):
    """Calendar months (UTC); period 0 is January 1970."""

    def index(self, timestamp: int) -> int:
        moment = datetime.fromtimestamp(timestamp // 1000, UTC)
        return (moment.year - 1970) * 12 + moment.month - 1

    def open_time(self, index: int) -> int:
        year, month = divmod(index, 12)
        return calendar.timegm((1970 + year, month + 1, 1, 0, 0, 0)) * 1000


CALENDAR_GRIDS: dict[str, dict[str, Grid]] = {
    "binance": {"3d": EveryGrid(3 * DAY), "1w": EveryGrid(WEEK, FIRST_MONDAY), "1M": MonthGrid()},
    "cryptocom": {
        "1w": EveryGrid(WEEK, FIRST_MONDAY),
        "2w": EveryGrid(2 * WEEK, FIRST_MONDAY),
        "1M": MonthGrid(),
    },
    "kraken": {"1w": EveryGrid(WEEK)},
}
"""Each exchange's own timeframes beyond the service's fixed ones, and their grids."""


@cache
def grid(exchange: str, timeframe: str) -> Grid:
    """The grid of ``exchange``'s ``timeframe`` candles: its calendar grid, else epoch
    multiples of the fixed timeframe's length (InvalidTimeframeError for any other)."""
    calendar_grid = CALENDAR_GRIDS.get(exchange, {}).get(timeframe)
    return calendar_grid or EveryGrid(timeframe_to_ms(timeframe))
