"""RangeRepairer: operators' forced refetch of a range, replacing what is stored."""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

from cbtrade.errors import InvalidInputError, UnknownSymbolError
from cbtrade.exchange_source.interfaces import IDataSourceConnector
from cbtrade.historical.fetcher import HistoricalFetcher, closed_end
from cbtrade.models import TimeRange
from cbtrade.storage.interfaces import IStorageManager
from cbtrade.telemetry import log_event
from cbtrade.timeframes import align_up

logger = logging.getLogger(__name__)


class RepairResult(NamedTuple):
    """The repaired range (aligned, clipped to closed candles) and its candle counts."""

    exchange: str
    symbol: str
    timeframe: str
    start: int
    end: int
    candles_before: int
    """Stored candles dropped from the range."""
    candles_after: int
    """Candles the exchange has in the range, now stored."""


class RangeRepairer:
    """Re-fetches a range of a series from the exchange and makes it all that is stored there.

    For data stored wrong (an exchange once answered empty or wrong). The whole range is
    fetched before anything is written, under the fetcher's series lock, so a failed fetch
    changes nothing and no gap-fill of the series interleaves. Empty call windows older than
    the grace period are asked twice before they replace stored candles.
    """

    def __init__(
        self,
        fetcher: HistoricalFetcher,
        storage: IStorageManager,
        connector: IDataSourceConnector,
        *,
        max_candles: int = 100_000,
    ) -> None:
        self._fetcher = fetcher
        self._storage = storage
        self._connector = connector
        self._max_candles = max_candles

    async def refetch(
        self,
        exchange_name: str,
        coin_symbol: str,
        timeframe: str,
        start_time: int,
        end_time: int,
        *,
        principal: str | None = None,
    ) -> RepairResult:
        """Replace the stored candles of ``[start_time, end_time)`` with the exchange's.

        The range is aligned up to the timeframe and ends at the newest closed candle; it
        must hold at least one and at most ``max_candles`` candle slots. ``principal`` (who
        asked) is logged.
        """
        began = time.monotonic()
        timeframe_ms = self._connector.get_client(exchange_name).check_timeframe(timeframe)
        if start_time < 0:
            raise InvalidInputError(f"start must not be before 1970, got {start_time}")
        if end_time <= start_time:
            raise InvalidInputError(f"end ({end_time}) must be after start ({start_time})")
        now = self._fetcher.now()
        window = TimeRange(
            align_up(start_time, timeframe_ms),
            min(align_up(end_time, timeframe_ms), closed_end(now, timeframe_ms)),
        )
        if window.end <= window.start:
            raise InvalidInputError(
                f"[start, end) holds no closed {timeframe} candle: "
                "it is shorter than one candle or not yet closed"
            )
        slots = (window.end - window.start) // timeframe_ms
        if slots > self._max_candles:
            raise InvalidInputError(
                f"[start, end) spans {slots} {timeframe} candles; "
                f"a repair may span at most {self._max_candles}"
            )
        if not await self._connector.check_coin_availability(exchange_name, coin_symbol):
            raise UnknownSymbolError.not_listed(exchange_name, coin_symbol)
        cutoff = min(window.end, self._fetcher.grace_cutoff(now, timeframe_ms))
        expect = TimeRange(window.start, cutoff) if cutoff > window.start else None
        async with self._fetcher.series_lock(exchange_name, coin_symbol, timeframe):
            candles = await self._connector.fetch_historical_data(
                exchange_name,
                coin_symbol,
                timeframe,
                window.start,
                window.end,
                expect_candles=expect,
            )
            covered = self._fetcher.covered_by(window, candles, timeframe_ms)
            dropped = await self._storage.replace_range(
                exchange_name,
                coin_symbol,
                timeframe,
                window.start,
                window.end,
                candles,
                covered=[covered] if covered.end > covered.start else [],
            )
        log_event(
            logger,
            "history.repair",
            exchange=exchange_name,
            symbol=coin_symbol,
            timeframe=timeframe,
            start_ms=window.start,
            end_ms=window.end,
            candles_before=dropped,
            candles_after=len(candles),
            principal=principal,
            duration_ms=round((time.monotonic() - began) * 1000),
        )
        return RepairResult(
            exchange_name, coin_symbol, timeframe, window.start, window.end, dropped, len(candles)
        )
