"""Timeframes the service supports, and millisecond alignment to them.

These are the fixed-length timeframes whose candle open times are multiples of the
timeframe's length in epoch milliseconds (UTC), as exchanges align them: the grids the
candle store and fetcher work on. An exchange's own calendar timeframes (``1w``, ``1M``) are
stored by their open times instead (:mod:`cbtrade.calendar_timeframes`), and others are
derived (:mod:`cbtrade.derived_timeframes`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from cbtrade.errors import InvalidTimeframeError

TIMEFRAME_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 3 * 60_000,
    "5m": 5 * 60_000,
    "15m": 15 * 60_000,
    "30m": 30 * 60_000,
    "1h": 3_600_000,
    "2h": 2 * 3_600_000,
    "4h": 4 * 3_600_000,
    "6h": 6 * 3_600_000,
    "8h": 8 * 3_600_000,
    "12h": 12 * 3_600_000,
    "1d": 86_400_000,
}

DEFAULT_TIMEFRAME = "5m"


def timeframe_to_ms(timeframe: str) -> int:
    """Return the length of ``timeframe`` in milliseconds, or raise InvalidTimeframeError."""
    try:
        return TIMEFRAME_MS[timeframe]
    except (KeyError, TypeError):
        raise unsupported_timeframe(timeframe) from None


def supported_timeframes(offered: Iterable[str] | None = None) -> list[str]:
    """The timeframes the service supports, shortest first; with ``offered`` (what an
    exchange offers), only those among them: what the service serves for that exchange."""
    if offered is None:
        return list(TIMEFRAME_MS)
    offered = set(offered)
    return [timeframe for timeframe in TIMEFRAME_MS if timeframe in offered]


def unsupported_timeframe(
    timeframe: str, *, exchange: str | None = None, offered: Iterable[str] | None = None
) -> InvalidTimeframeError:
    """The error for a timeframe that is not served on the fixed grids, listing those that
    are: for ``exchange``, those of the service it ``offered`` (an exchange's own calendar
    timeframes, such as ``1w``, are served by /api/v1/ohlcv only, and the error says so)."""
    if exchange is None or offered is None:
        supported = ", ".join(supported_timeframes())
        return InvalidTimeframeError(f"unsupported timeframe {timeframe!r}; supported: {supported}")
    offered = list(offered)
    served = ", ".join(supported_timeframes(offered)) or "none that this service supports"
    if timeframe in offered:
        return InvalidTimeframeError(
            f"{exchange}'s own {timeframe!r} candles (and derived timeframes) are served by "
            f"GET /api/v1/ohlcv only; here it offers {served}"
        )
    return InvalidTimeframeError(
        f"{exchange} does not offer {timeframe!r} candles through this service; it offers {served}"
    )


def align_down(timestamp: int, timeframe_ms: int) -> int:
    """The open time of the candle that contains ``timestamp``."""
    return timestamp - timestamp % timeframe_ms


def align_up(timestamp: int, timeframe_ms: int) -> int:
    """The first candle open time at or after ``timestamp``."""
    return -(-timestamp // timeframe_ms) * timeframe_ms


def month_of(timestamp: int) -> int:
    """The number of the UTC calendar month holding ``timestamp``, from January 1970."""
    return int(np.datetime64(timestamp, "ms").astype("datetime64[M]").astype(np.int64))


def month_start(month: int) -> int:
    """Epoch ms of the start of the ``month``-th month since January 1970."""
    return int(np.datetime64(month, "M").astype("datetime64[ms]").astype(np.int64))
