"""Storage interfaces: the raw-data store (one backend) and the storage manager over it.

All methods are async. Candles are :class:`~cbtrade.models.Candle` (open time in epoch ms UTC,
aligned to the timeframe). Time ranges are half-open ``[start, end)`` in epoch ms UTC.

Besides candles, the store records *coverage*: the time ranges that were fetched from the
exchange, including ranges that came back with no candles (before a listing, no trades).
Gap-filling reads coverage, not candles, to decide what to fetch, so an empty range is never
fetched twice. Candles and the coverage they belong to are written together, atomically per
stored object, so nothing is ever marked fetched that was not stored.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import NamedTuple

from cbtrade.candle_table import CandleTable
from cbtrade.models import Candle, TimeRange


class SeriesSlice(NamedTuple):
    """What is stored of one series within a requested range."""

    candles: CandleTable
    """Stored candles in the range, ascending by timestamp, no duplicates (as columns)."""
    covered: list[TimeRange]
    """Fetched ranges clipped to the requested range, merged and ascending."""


class IRawDataStorage(ABC):
    """A backend that persists candles and coverage per series (exchange, symbol, timeframe)."""

    @abstractmethod
    async def save_entry(
        self, exchange_name: str, coin_symbol: str, timeframe: str, candle: Candle
    ) -> None:
        """Store one candle (merged with what is stored; same timestamp replaces)."""

    @abstractmethod
    async def save_bulk_entries(
        self,
        exchange_name: str,
        coin_symbol: str,
        timeframe: str,
        candles: Sequence[Candle],
        *,
        covered: Sequence[TimeRange] = (),
    ) -> None:
        """Store candles and mark ``covered`` ranges as fetched, atomically per stored object.

        ``candles`` are valid, aligned, ascending and unique (the manager guarantees it).
        """

    @abstractmethod
    async def get_range(
        self, exchange_name: str, coin_symbol: str, timeframe: str, start_time: int, end_time: int
    ) -> list[Candle]:
        """Stored candles with ``start_time <= timestamp < end_time``, ascending."""

    @abstractmethod
    async def get_range_with_coverage(
        self, exchange_name: str, coin_symbol: str, timeframe: str, start_time: int, end_time: int
    ) -> SeriesSlice:
        """Stored candles and coverage in ``[start_time, end_time)``, read once."""

    @abstractmethod
    async def get_latest_timestamp(
        self, exchange_name: str, coin_symbol: str, timeframe: str
    ) -> int | None:
        """Open time of the newest stored candle of the series, or None."""

    @abstractmethod
    async def list_coins(self, exchange_name: str) -> list[str]:
        """Symbols (ccxt unified, e.g. ``BTC/USD``) with anything stored, sorted."""

    @abstractmethod
    async def check_coin_exists(
        self, exchange_name: str, coin_symbol: str, timeframe: str | None = None
    ) -> bool:
        """Whether anything is stored for the symbol (for one timeframe, or any)."""

    @abstractmethod
    async def check_health(self) -> None:
        """Return if the store is reachable and usable; raise a StorageError if not."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and other resources."""


class IStorageManager(IRawDataStorage):
    """The storage facade the rest of the service uses.

    Same operations as :class:`IRawDataStorage`; it validates candles (types, finite numbers,
    alignment to the timeframe) and sorts and de-duplicates them before the backend sees them.
    """
