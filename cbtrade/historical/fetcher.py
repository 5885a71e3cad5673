"""HistoricalFetcher: serve a range from storage, fetching only the gaps from the exchange."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from cbtrade.candle_table import CandleTable
from cbtrade.errors import UnknownSymbolError
from cbtrade.exchange_source.interfaces import IDataSourceConnector
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.interfaces import IStorageManager
from cbtrade.telemetry import log_event
from cbtrade.time_ranges import subtract_ranges
from cbtrade.timeframes import align_down, align_up, timeframe_to_ms

logger = logging.getLogger(__name__)

Clock = Callable[[], int]
"""Returns now in epoch milliseconds UTC."""

FILL_PARTS = 4
MIN_PART_CALLS = 4
"""A fetch window is fetched and stored in up to FILL_PARTS parts of at least MIN_PART_CALLS
exchange calls each (see ``_in_parts``)."""


def system_clock() -> int:
    """Now in epoch milliseconds UTC."""
    return time.time_ns() // 1_000_000


def closed_end(now: int, timeframe_ms: int) -> int:
    """The open time of the still-forming candle: every candle before it is closed."""
    return align_down(now, timeframe_ms)


class HistoricalFetcher:
    """Reads a series range from storage and fills its gaps from the exchange.

    What was fetched is remembered as coverage, so ranges the exchange answered with no
    candles are not fetched again; a failed fetch records nothing. Fetch windows are
    stretched forward to whole exchange calls (the extra is stored), and gap-filling of one
    series is serialised within the process, so concurrent requests for the same gap share
    one fetch. Across processes, the store's conditional writes keep every candle.
    """

    def __init__(
        self,
        storage: IStorageManager,
        connector: IDataSourceConnector,
        *,
        empty_fetch_grace_ms: int = 3_600_000,
        clock: Clock = system_clock,
    ) -> None:
        self._storage = storage
        self._connector = connector
        self._empty_fetch_grace_ms = empty_fetch_grace_ms
        self._clock = clock
        self._series_locks: weakref.WeakValueDictionary[tuple[str, str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def now(self) -> int:
        """The fetcher's clock, in epoch milliseconds UTC."""
        return self._clock()

    async def fetch_data(
        self, exchange_name: str, coin_symbol: str, timeframe: str, start_time: int, end_time: int
    ) -> CandleTable:
        """Exactly the closed candles the exchange has in ``[start_time, end_time)``, ascending.

        Stored ranges are served without any exchange call. Raises UnknownSymbolError for a
        symbol the exchange does not list and nothing is stored for.
        """
        timeframe_ms = timeframe_to_ms(timeframe)
        window = TimeRange(
            align_up(start_time, timeframe_ms),
            min(align_up(end_time, timeframe_ms), closed_end(self.now(), timeframe_ms)),
        )
        if window.end <= window.start:
            return CandleTable.empty()
        stored = await self._storage.get_range_with_coverage(
            exchange_name, coin_symbol, timeframe, window.start, window.end
        )
        if not subtract_ranges(window, stored.covered):
            return stored.candles

        lock = self._series_locks.setdefault(
            (exchange_name, coin_symbol, timeframe), asyncio.Lock()
        )
        async with lock:
            # Another request may have filled the gap while this one waited.
            stored = await self._storage.get_range_with_coverage(
                exchange_name, coin_symbol, timeframe, window.start, window.end
            )
            gaps = subtract_ranges(window, stored.covered)
            if not gaps:
                return stored.candles
            if not await self._connector.check_coin_availability(exchange_name, coin_symbol):
                if len(stored.candles) or await self._storage.check_coin_exists(
                    exchange_name, coin_symbol
                ):
                    # Delisted: serve what is stored, there is nothing left to fetch.
                    return stored.candles
                raise UnknownSymbolError(f"{exchange_name} does not list {coin_symbol!r}")
            fetched = await self._fill_gaps(exchange_name, coin_symbol, timeframe, window, gaps)
        fetched_table = CandleTable.from_candles(fetched).between(window.start, window.end)
        return stored.candles.merge(fetched_table)

    async def _fill_gaps(
        self,
        exchange_name: str,
        coin_symbol: str,
        timeframe: str,
        window: TimeRange,
        gaps: list[TimeRange],
    ) -> list[Candle]:
        timeframe_ms = timeframe_to_ms(timeframe)
        per_call = self._connector.get_client(exchange_name).get_max_candles_per_call(timeframe)
        fetch_windows = _in_parts(
            await self._stretch_to_whole_calls(
                exchange_name, coin_symbol, timeframe, gaps, per_call * timeframe_ms
            ),
            per_call * timeframe_ms,
        )
        fetched: list[Candle] = []
        began = time.monotonic()
        async with aclosing(
            self._fetch_in_order(exchange_name, coin_symbol, timeframe, fetch_windows)
        ) as results:
            async for fetch_window, candles in results:
                covered = self._covered_by(fetch_window, candles, timeframe_ms)
                await self._storage.save_bulk_entries(
                    exchange_name,
                    coin_symbol,
                    timeframe,
                    candles,
                    covered=[covered] if covered.end > covered.start else [],
                )
                slots = (fetch_window.end - fetch_window.start) // timeframe_ms
                log_event(
                    logger,
                    "history.fill",
                    exchange=exchange_name,
                    symbol=coin_symbol,
                    timeframe=timeframe,
                    start_ms=fetch_window.start,
                    end_ms=fetch_window.end,
                    requested_start_ms=window.start,
                    requested_end_ms=window.end,
                    candles_fetched=len(candles),
                    covered_end_ms=covered.end,
                    exchange_calls=-(-slots // per_call),
                    duration_ms=round((time.monotonic() - began) * 1000),
                )
                fetched.extend(candles)
                began = time.monotonic()
        return fetched

    async def _fetch_in_order(
        self, exchange_name: str, coin_symbol: str, timeframe: str, windows: list[TimeRange]
    ) -> AsyncGenerator[tuple[TimeRange, list[Candle]], None]:
        """Each window with its candles, in order. The next window's calls are already in
        flight while the caller stores this one, so the exchange's rate limit, not the
        storage write, paces a fill."""

        def fetch(window: TimeRange) -> asyncio.Future[list[Candle]]:
            return asyncio.ensure_future(
                self._connector.fetch_historical_data(
                    exchange_name, coin_symbol, timeframe, window.start, window.end
                )
            )

        pending = [fetch(windows[0])] if windows else []
        try:
            for index, window in enumerate(windows):
                if index + 1 < len(windows):
                    pending.append(fetch(windows[index + 1]))
                yield window, await pending.pop(0)
        finally:
            for future in pending:
                future.cancel()
            # Retrieve what they ended with, so a part that failed too is not logged as lost.
            await asyncio.gather(*pending, return_exceptions=True)

    async def _stretch_to_whole_calls(
        self,
        exchange_name: str,
        coin_symbol: str,
        timeframe: str,
        gaps: list[TimeRange],
        call_span_ms: int,
    ) -> list[TimeRange]:
        """Stretch each gap forward to a whole number of exchange calls.

        A call costs the same whether it asks for one candle or the exchange's maximum, so
        the spare capacity is spent on the range after the gap (the next page, usually), up
        to what is already covered and to the newest closed candle.
        """
        horizon = closed_end(self.now(), timeframe_to_ms(timeframe))
        last = gaps[-1]
        calls = -(-(last.end - last.start) // call_span_ms)
        reach = min(last.start + calls * call_span_ms, horizon)
        if reach <= last.end:
            return gaps
        beyond = await self._storage.get_range_with_coverage(
            exchange_name, coin_symbol, timeframe, last.end, reach
        )
        stretched_end = beyond.covered[0].start if beyond.covered else reach
        if stretched_end == last.end:
            return gaps
        return [*gaps[:-1], TimeRange(last.start, stretched_end)]

    def _covered_by(
        self, fetched: TimeRange, candles: list[Candle], timeframe_ms: int
    ) -> TimeRange:
        """The part of a fetched window that may be recorded as covered.

        An empty tail within the grace period before now is left unrecorded: exchanges
        publish late, and a candle that is missing now may still appear.
        """
        cutoff = align_down(self.now() - self._empty_fetch_grace_ms, timeframe_ms)
        if fetched.end <= cutoff:
            return fetched
        tail_start = candles[-1].timestamp + timeframe_ms if candles else fetched.start
        return TimeRange(fetched.start, min(fetched.end, max(tail_start, cutoff, fetched.start)))


def _in_parts(windows: list[TimeRange], call_span_ms: int) -> list[TimeRange]:
    """The fetch windows cut into parts of whole exchange calls, each stored as it arrives.

    A window of more than ``MIN_PART_CALLS`` calls is cut into up to ``FILL_PARTS`` parts
    of at least ``MIN_PART_CALLS`` calls: storing a part overlaps the next part's calls,
    and only the last part's write is left after the last call. Parts end on call
    boundaries, so the calls stay ``ceil(candles / max per call)``; few parts keep the extra
    writes (a UTC day object shared by two parts is written twice) few. A part that fails
    records nothing; the parts stored before it stay recorded.
    """
    parts: list[TimeRange] = []
    for window in windows:
        calls = -(-(window.end - window.start) // call_span_ms)
        span = max(MIN_PART_CALLS, -(-calls // FILL_PARTS)) * call_span_ms
        parts.extend(
            TimeRange(first, min(first + span, window.end))
            for first in range(window.start, window.end, span)
        )
    return parts
