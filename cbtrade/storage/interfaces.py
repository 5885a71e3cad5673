"""Storage interfaces: the raw-data store (one backend) and the storage manager over it.

All methods are async. Candles are :class:`~cbtrade.models.Candle` (open time in epoch ms UTC,
aligned to the timeframe). Time ranges are half-open ``[start, end)`` in epoch ms UTC.

Besides candles, the store records *coverage*: the time ranges that were fetched from the
exchange, including ranges that came back with no candles (before a listing, no trades).
Gap-filling reads coverage, not candles, to decide what to fetch, so an empty range is never
fetched twice. Candles and the coverage they belong to are written together, atomically per
stored object, so nothing is ever marked fetched that was not stored.

Each series also has a small :class:`SeriesBounds` record: what listing discovery verified
about where its history starts (and, for a market that stopped trading, ends), so that the
years outside it are never fetched and create no objects.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from cbtrade.candle_table import CandleTable
from cbtrade.errors import InvalidInputError
from cbtrade.models import Candle, TimeRange


class SeriesSlice(NamedTuple):
    """What is stored of one series within a requested range."""

    candles: CandleTable
    """Stored candles in the range, ascending by timestamp, no duplicates (as columns)."""
    covered: list[TimeRange]
    """Fetched ranges clipped to the requested range, merged and ascending."""
    sealed: bool = False
    """Every object of the range is sealed: wholly fetched, older than the grace period, so
    only a repair changes it (and HTTP caches may keep it)."""


class SeriesBounds(NamedTuple):
    """What listing discovery has verified about a series' life (exchange, symbol, timeframe)."""

    empty_before: int = 0
    """No candle opens before this (epoch ms, aligned): verified with the exchange."""
    first_candle: int | None = None
    """Open time of the series' first candle, once found (then ``empty_before == first_candle``)."""
    empty_from: int | None = None
    """No candle opens at or after this: the history of a market that stopped trading ends here."""

    def check_consistent(self) -> None:
        """Raise InvalidInputError if the fields contradict each other."""
        if self.first_candle is not None and self.first_candle != self.empty_before:
            raise InvalidInputError(
                f"series bounds {tuple(self)}: first_candle must equal empty_before when set"
            )
        if self.empty_from is not None and self.empty_from <= self.empty_before:
            raise InvalidInputError(
                f"series bounds {tuple(self)}: empty_from must be after empty_before"
            )

    def merged(self, newer: SeriesBounds, *, clear_empty_from: bool = False) -> SeriesBounds:
        """This stored record updated by ``newer`` (the rules of ``save_series_bounds``)."""
        if clear_empty_from:
            empty_from = None
        else:
            empty_from = self.empty_from if newer.empty_from is None else newer.empty_from
        merged = SeriesBounds(
            max(self.empty_before, newer.empty_before),
            self.first_candle if newer.first_candle is None else newer.first_candle,
            empty_from,
        )
        merged.check_consistent()
        return merged


class SeriesSummary(NamedTuple):
    """What is stored of one series (one catalog entry)."""

    exchange_name: str
    coin_symbol: str
    """The series symbol as stored (a price type's series carries its ``@price`` suffix)."""
    timeframe: str
    first: int | None
    """Open time of the first stored candle, or None if the series holds none."""
    last: int | None
    """Open time of the last stored candle, or None."""
    candles: int
    """Stored candles."""
    not_covered: list[TimeRange]
    """Ranges between the first and the last candle never fetched, ascending."""
    missing_candles: int
    """Fetched slots between the first and the last candle that hold no candle."""


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
        """Make ``candles`` and ``covered`` all that is stored in ``[start_time, end_time)``.

        Every stored candle and every stored coverage in the range is dropped, then
        ``candles`` and ``covered`` (clipped to the range) are stored; outside the range
        nothing changes. Returns how many stored candles were dropped. For operators' repair.

        ``candles`` are valid, aligned, ascending, unique and inside the range, and the range
        is aligned (the manager guarantees it). If the range starts before the series bounds'
        ``empty_before``, that is lowered to ``start_time`` and ``first_candle`` unset (those
        years are no longer assumed empty); if it ends after ``empty_from``, that is cleared.
        The bounds are written first, then each object with one conditional
        read-modify-write: a crash or an error part-way leaves each object wholly old or
        wholly new, never half-written, and the caller re-runs the repair (it is idempotent).
        """

    @abstractmethod
    async def get_sealed_epoch(
        self, exchange_name: str, coin_symbol: str, timeframe: str
    ) -> int | None:
        """A number that changes whenever the series' sealed data may have changed (a repair,
        here or on another instance once seen); None if the store seals nothing. What is
        derived from sealed data under one epoch may be kept until the epoch changes."""

    @abstractmethod
    async def get_series_bounds(
        self, exchange_name: str, coin_symbol: str, timeframe: str
    ) -> SeriesBounds:
        """The stored bounds of the series; ``SeriesBounds()`` if none are stored."""

    @abstractmethod
    async def save_series_bounds(
        self,
        exchange_name: str,
        coin_symbol: str,
        timeframe: str,
        bounds: SeriesBounds,
        *,
        clear_empty_from: bool = False,
    ) -> SeriesBounds:
        """Merge ``bounds`` into the stored record and return the merged record.

        ``empty_before`` only rises (the larger wins); ``first_candle`` and ``empty_from``
        take the new value when it is given and keep the stored one when it is None;
        ``clear_empty_from=True`` removes ``empty_from`` (``bounds.empty_from`` must then be
        None). The write is conditional and retried, so concurrent saves lose no field.
        Raises InvalidInputError if the merged record would contradict itself (a
        ``first_candle`` other than the merged ``empty_before``, an ``empty_from`` not after
        it): the stored record is then left as it is. Nothing deletes the record:
        :meth:`replace_range` lowers it when operators repair history outside it.
        """

    @abstractmethod
    async def get_latest_timestamp(
        self, exchange_name: str, coin_symbol: str, timeframe: str
    ) -> int | None:
        """Open time of the newest stored candle of the series, or None."""

    @abstractmethod
    async def list_coins(self, exchange_name: str) -> list[str]:
        """Symbols (ccxt unified, e.g. ``BTC/USD``) with anything stored, sorted."""

    @abstractmethod
    async def list_series(
        self, exchange_name: str, coin_symbol: str | None = None
    ) -> list[SeriesSummary]:
        """What is stored of each series of the exchange, sorted by symbol, price type and
        timeframe; if ``coin_symbol`` is given, only its series (all the price types of a
        ccxt symbol, or the one series a series symbol such as ``BTC/USDT:USDT@mark`` names).

        Reads coverage, not candles, in the steady state (see :mod:`cbtrade.storage.catalog`).
        """

    @abstractmethod
    async def check_coin_exists(
        self, exchange_name: str, coin_symbol: str, timeframe: str | None = None
    ) -> bool:
        """Whether anything is stored for the symbol (for one timeframe, or any)."""

    @abstractmethod
    async def get_document(self, name: str) -> dict[str, Any] | None:
        """The service document ``name``, or None.

        Service documents are small JSON objects the service keeps beside the candles (jobs,
        shared rate budgets), under their own root; names are ``/``-separated parts of
        ``[a-z0-9._-]``. They are read afresh every time.
        """

    @abstractmethod
    async def update_document(
        self, name: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Store ``change(stored document or None)`` with a conditional write, calling
        ``change`` again after a lost race; returning the stored document or None writes
        nothing. Returns the document as it is then stored. StorageConflictError when the
        store's write attempts are spent."""

    @abstractmethod
    async def list_documents(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every service document whose name starts with ``prefix/``, by name."""

    @abstractmethod
    async def check_health(self) -> None:
        """Return if the store is reachable and usable; raise a StorageError if not."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and other resources."""


class IStorageManager(IRawDataStorage):
    """The storage facade the rest of the service uses.

    Same operations as :class:`IRawDataStorage`; it validates candles (types, finite numbers,
    alignment to the timeframe) and sorts and de-duplicates them before the backend sees them,
    and raises InvalidInputError for ranges, coverage and bounds that are not integer epoch
    ms >= 0 aligned to the timeframe, or for candles outside a replaced range.
    """
