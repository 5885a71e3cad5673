"""Data models: the candle, time ranges, and the API's request and response models."""

from __future__ import annotations

from typing import NamedTuple


class Candle(NamedTuple):
    """One OHLCV candle; ``timestamp`` is its open time in epoch milliseconds UTC.

    A NamedTuple rather than a pydantic model: a year of 5m candles is 105,120 of them, and
    they are created, sorted and encoded on the hot path.
    """

    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class TimeRange(NamedTuple):
    """A half-open interval ``[start, end)`` in epoch milliseconds UTC."""

    start: int
    end: int
