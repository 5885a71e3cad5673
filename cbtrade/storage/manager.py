"""StorageManagerImpl: validates input, then delegates to the configured raw-data backend."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from cbtrade.config import Settings
from cbtrade.errors import InvalidCandleError, InvalidInputError
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.interfaces import (
    IRawDataStorage,
    IStorageManager,
    SeriesBounds,
    SeriesSlice,
    SeriesSummary,
)
from cbtrade.storage.object_storage import SealingPolicy
from cbtrade.storage.path_utility import MAX_TIMESTAMP, StoragePathUtility
from cbtrade.timeframes import timeframe_to_ms


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class StorageManagerImpl(IStorageManager):
    """The storage facade: checks names, candles and ranges, sorts and de-duplicates candles."""

    def __init__(self, storage: IRawDataStorage) -> None:
        self._storage = storage
        self._paths = StoragePathUtility()

    @property
    def backend(self) -> IRawDataStorage:
        """The raw-data storage this manager delegates to."""
        return self._storage

    def _check_series(self, exchange_name: str, coin_symbol: str, timeframe: str) -> int:
        self._paths.validate_exchange(exchange_name)
        self._paths.validate_symbol(coin_symbol)
        return timeframe_to_ms(timeframe)

    @staticmethod
    def _check_times(start_time: int, end_time: int) -> None:
        if not (_is_int(start_time) and _is_int(end_time)):
            raise InvalidInputError(
                f"start and end must be integer epoch ms, got {start_time!r}, {end_time!r}"
            )

    @staticmethod
    def _check_aligned_range(start_time: int, end_time: int, timeframe_ms: int) -> None:
        if not (_is_int(start_time) and _is_int(end_time)) or not (
            0 <= start_time < end_time <= MAX_TIMESTAMP
        ):
            raise InvalidInputError(
                f"range [{start_time!r}, {end_time!r}) needs integer 0 <= start < end <= "
                f"{MAX_TIMESTAMP} (epoch ms)"
            )
        if start_time % timeframe_ms or end_time % timeframe_ms:
            raise InvalidInputError(
                f"range [{start_time}, {end_time}) is not aligned to {timeframe_ms} ms"
            )

    @staticmethod
    def _check_bounds(bounds: SeriesBounds, timeframe_ms: int, *, clear_empty_from: bool) -> None:
        if not isinstance(bounds, SeriesBounds):
            raise InvalidInputError(f"series bounds must be a SeriesBounds, got {bounds!r}")
        for name, value in bounds._asdict().items():
            if value is None and name != "empty_before":
                continue
            if not _is_int(value) or not 0 <= value < MAX_TIMESTAMP:
                raise InvalidInputError(f"series bounds: {name}={value!r} is not epoch ms >= 0")
            if value % timeframe_ms:
                raise InvalidInputError(
                    f"series bounds: {name}={value} is not aligned to {timeframe_ms} ms"
                )
        if clear_empty_from and bounds.empty_from is not None:
            raise InvalidInputError("clear_empty_from=True needs bounds.empty_from to be None")
        bounds.check_consistent()

    @staticmethod
    def _normalize_candles(candles: Sequence[Candle], timeframe_ms: int) -> list[Candle]:
        """Valid candles as Candle of int and floats, ascending, one per timestamp (last wins)."""
        by_timestamp: dict[int, Candle] = {}
        for candle in candles:
            if not isinstance(candle, tuple | list) or len(candle) != 6:
                raise InvalidCandleError(f"{candle!r} is not [timestamp, o, h, l, c, v]")
            timestamp, *values = candle
            if not _is_int(timestamp) or timestamp < 0:
                raise InvalidCandleError(f"{candle!r}: timestamp must be an int >= 0 (epoch ms)")
            if timestamp % timeframe_ms:
                raise InvalidCandleError(
                    f"{candle!r}: timestamp is not aligned to {timeframe_ms} ms"
                )
            if not all(_is_number(value) for value in values):
                raise InvalidCandleError(f"{candle!r}: prices and volume must be finite numbers")
            by_timestamp[timestamp] = Candle(timestamp, *map(float, values))
        if list(by_timestamp) != sorted(by_timestamp):
            return [by_timestamp[ts] for ts in sorted(by_timestamp)]
        return list(by_timestamp.values())

    @staticmethod
    def _normalize_covered(covered: Sequence[TimeRange], timeframe_ms: int) -> list[TimeRange]:
        ranges = []
        for item in covered:
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise InvalidInputError(f"covered range {item!r} is not [start, end)")
            start, end = item
            if not (_is_int(start) and _is_int(end)) or not 0 <= start < end:
                raise InvalidInputError(
                    f"covered range {item!r} needs integer 0 <= start < end (epoch ms)"
                )
            if start % timeframe_ms or end % timeframe_ms:
                raise InvalidInputError(
                    f"covered range {item!r} is not aligned to {timeframe_ms} ms"
                )
            ranges.append(TimeRange(start, end))
        return ranges

    async def save_entry(
        self, exchange_name: str, coin_symbol: str, timeframe: str, candle: Candle
    ) -> None:
        """Validate and store one candle."""
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
        """Validate, sort and de-duplicate candles and check coverage, then store them."""
        timeframe_ms = self._check_series(exchange_name, coin_symbol, timeframe)
        await self._storage.save_bulk_entries(
            exchange_name,
            coin_symbol,
            timeframe,
            self._normalize_candles(candles, timeframe_ms),
            covered=self._normalize_covered(covered, timeframe_ms),
        )

    async def get_range(
        self, exchange_name: str, coin_symbol: str, timeframe: str, start_time: int, end_time: int
    ) -> list[Candle]:
        """Stored candles in ``[start_time, end_time)``, ascending."""
        self._check_series(exchange_name, coin_symbol, timeframe)
        self._check_times(start_time, end_time)
        return await self._storage.get_range(
            exchange_name, coin_symbol, timeframe, start_time, end_time
        )

    async def get_range_with_coverage(
        self, exchange_name: str, coin_symbol: str, timeframe: str, start_time: int, end_time: int
    ) -> SeriesSlice:
        """Stored candles and coverage in ``[start_time, end_time)``."""
        self._check_series(exchange_name, coin_symbol, timeframe)
        self._check_times(start_time, end_time)
        return await self._storage.get_range_with_coverage(
            exchange_name, coin_symbol, timeframe, start_time, end_time
        )

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
        """Check the aligned range, the candles (all inside it) and coverage, then replace."""
        timeframe_ms = self._check_series(exchange_name, coin_symbol, timeframe)
        self._check_aligned_range(start_time, end_time, timeframe_ms)
        normalized = self._normalize_candles(candles, timeframe_ms)
        outside = [c for c in normalized if not start_time <= c.timestamp < end_time]
        if outside:
            raise InvalidInputError(
                f"{len(outside)} candles are outside the replaced range "
                f"[{start_time}, {end_time}), the first at {outside[0].timestamp}"
            )
        return await self._storage.replace_range(
            exchange_name,
            coin_symbol,
            timeframe,
            start_time,
            end_time,
            normalized,
            covered=self._normalize_covered(covered, timeframe_ms),
        )

    async def get_sealed_epoch(
        self, exchange_name: str, coin_symbol: str, timeframe: str
    ) -> int | None:
        """The series' sealed-data epoch (see the interface), or None."""
        self._check_series(exchange_name, coin_symbol, timeframe)
        return await self._storage.get_sealed_epoch(exchange_name, coin_symbol, timeframe)

    async def get_series_bounds(
        self, exchange_name: str, coin_symbol: str, timeframe: str
    ) -> SeriesBounds:
        """The stored bounds of the series, or ``SeriesBounds()``."""
        self._check_series(exchange_name, coin_symbol, timeframe)
        return await self._storage.get_series_bounds(exchange_name, coin_symbol, timeframe)

    async def save_series_bounds(
        self,
        exchange_name: str,
        coin_symbol: str,
        timeframe: str,
        bounds: SeriesBounds,
        *,
        clear_empty_from: bool = False,
    ) -> SeriesBounds:
        """Check the bounds (aligned epoch ms, consistent), then merge them into the store."""
        timeframe_ms = self._check_series(exchange_name, coin_symbol, timeframe)
        self._check_bounds(bounds, timeframe_ms, clear_empty_from=clear_empty_from)
        return await self._storage.save_series_bounds(
            exchange_name, coin_symbol, timeframe, bounds, clear_empty_from=clear_empty_from
        )

    async def get_latest_timestamp(
        self, exchange_name: str, coin_symbol: str, timeframe: str
    ) -> int | None:
        """Open time of the newest stored candle, or None."""
        self._check_series(exchange_name, coin_symbol, timeframe)
        return await self._storage.get_latest_timestamp(exchange_name, coin_symbol, timeframe)

    async def list_coins(self, exchange_name: str) -> list[str]:
        """Symbols stored for the exchange, sorted."""
        self._paths.validate_exchange(exchange_name)
        return await self._storage.list_coins(exchange_name)

    async def list_series(
        self, exchange_name: str, coin_symbol: str | None = None
    ) -> list[SeriesSummary]:
        """What is stored of each series of the exchange (or of one symbol)."""
        self._paths.validate_exchange(exchange_name)
        if coin_symbol is not None:
            self._paths.validate_symbol(coin_symbol)
        return await self._storage.list_series(exchange_name, coin_symbol)

    async def check_coin_exists(
        self, exchange_name: str, coin_symbol: str, timeframe: str | None = None
    ) -> bool:
        """Whether anything is stored for the symbol (and timeframe, if given)."""
        self._paths.validate_exchange(exchange_name)
        self._paths.validate_symbol(coin_symbol)
        if timeframe is not None:
            timeframe_to_ms(timeframe)
        return await self._storage.check_coin_exists(exchange_name, coin_symbol, timeframe)

    async def get_document(self, name: str) -> dict[str, Any] | None:
        """The service document ``name``, or None."""
        return await self._storage.get_document(name)

    async def update_document(
        self, name: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Conditionally store ``change(stored)``; the document as then stored."""
        return await self._storage.update_document(name, change)

    async def list_documents(self, prefix: str) -> dict[str, dict[str, Any]]:
        """The service documents under ``prefix/``, by name."""
        return await self._storage.list_documents(prefix)

    async def check_health(self) -> None:
        """Raise a StorageError if the backend is unreachable or unusable."""
        await self._storage.check_health()

    async def close(self) -> None:
        """Close the backend."""
        await self._storage.close()


def create_raw_data_storage(settings: Settings) -> IRawDataStorage:
    """The backend that ``settings.storage_backend`` names (no I/O happens here)."""
    # Sealed after the grace period: no fill writes an older, wholly covered object.
    sealing = SealingPolicy(
        seal_after_ms=settings.empty_fetch_grace_seconds * 1000,
        recheck_seconds=settings.sealed_recheck_seconds,
    )
    if settings.storage_backend == "azure":
        # Imported here so local runs do not load the Azure SDK.
        from cbtrade.storage.implementations.azure_blob_storage import AzureBlobStorage

        secret = settings.azure_connection_string
        return AzureBlobStorage(
            container=settings.azure_container,
            connection_string=secret.get_secret_value() if secret is not None else None,
            account_url=settings.azure_account_url,
            timeout_seconds=settings.storage_timeout_seconds,
            write_attempts=settings.storage_write_attempts,
            sealing=sealing,
            trust_env=settings.storage_trust_env,
        )
    from cbtrade.storage.implementations.local_file_storage import LocalFileStorage

    return LocalFileStorage(
        settings.local_storage_root, write_attempts=settings.storage_write_attempts, sealing=sealing
    )


def create_storage_manager(settings: Settings) -> StorageManagerImpl:
    """A StorageManagerImpl over the backend the settings choose."""
    return StorageManagerImpl(create_raw_data_storage(settings))
