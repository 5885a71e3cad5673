"""HistoricalFetcher: serve a range from storage, fetching only the gaps from the exchange."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import NamedTuple

from cbtrade.candle_table import CandleTable
from cbtrade.errors import UnknownSymbolError
from cbtrade.exchange_source.history_edges import EdgeWindow
from cbtrade.exchange_source.interfaces import IDataSourceConnector, IExchangeAPIClient
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.interfaces import IStorageManager, SeriesBounds
from cbtrade.storage.path_utility import MAX_TIMESTAMP
from cbtrade.telemetry import log_event
from cbtrade.time_ranges import clip_ranges, subtract_ranges
from cbtrade.timeframes import align_down, align_up, timeframe_to_ms

logger = logging.getLogger(__name__)

Clock = Callable[[], int]
"""Returns now in epoch milliseconds UTC."""

FILL_PARTS = 4
MIN_PART_CALLS = 4
"""A fill's calls are stored in up to FILL_PARTS parts of at least MIN_PART_CALLS calls each,
each as soon as its calls have arrived, so storing overlaps the next part's calls, and only
the last part's write is left after the last call; few parts keep the extra writes (a UTC
day object shared by two parts is written twice) few. A part is stored whole or not at all."""
CALLS_AHEAD = 32
"""Calls of a fill asked for ahead of the one it waits for (the plugin's in-flight limit and
the exchange's rate limit pace them); at the deadline those not yet arrived are cancelled."""


READS_AHEAD = 8
"""Reads ahead (of the next page of a query) running at once, over all series."""


class FetchResult(NamedTuple):
    """The candles of a range up to where it was read."""

    candles: CandleTable
    reached: int
    """Where to go on: the range's end; less, when the deadline stopped the fill (the
    candles hold what lies before it); more, when nothing opens between the range's end
    and it (the years before a listing, after the end of a market that stopped trading)."""
    sealed: bool = False
    """Served wholly from sealed objects: it changes only if the range is repaired."""


class _Series(NamedTuple):
    exchange: str
    symbol: str
    timeframe: str


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
        self._reads_ahead: dict[_Series, asyncio.Task[object]] = {}

    def now(self) -> int:
        """The fetcher's clock, in epoch milliseconds UTC."""
        return self._clock()

    async def sealed_epoch(
        self, exchange_name: str, coin_symbol: str, timeframe: str
    ) -> int | None:
        """The series' sealed-data epoch: what is derived from its sealed objects may be kept
        until this changes (a repair). None when the store seals nothing."""
        return await self._storage.get_sealed_epoch(exchange_name, coin_symbol, timeframe)

    def read_ahead(
        self, exchange_name: str, coin_symbol: str, timeframe: str, start_time: int, end_time: int
    ) -> None:
        """Start loading what is stored of ``[start_time, end_time)`` (the next page, while
        the client reads this one) into the store's cache, in the background; never an
        exchange call. One per series at a time, and at most READS_AHEAD at once; the next
        read of the series waits for it, so its objects are read once."""
        series = _Series(exchange_name, coin_symbol, timeframe)
        if series in self._reads_ahead or len(self._reads_ahead) >= READS_AHEAD:
            return
        task: asyncio.Task[object] = asyncio.create_task(
            self._storage.get_range_with_coverage(*series, start_time, end_time),
            name=f"read-ahead {exchange_name} {coin_symbol} {timeframe}",
        )
        self._reads_ahead[series] = task

        def finished(done: asyncio.Task[object]) -> None:
            if self._reads_ahead.get(series) is done:
                del self._reads_ahead[series]
            if not done.cancelled() and done.exception() is not None:
                # The read it was for will meet the fault itself, and report it.
                logger.debug("read-ahead of %s failed: %s", series, done.exception())

        task.add_done_callback(finished)

    async def close(self) -> None:
        """Stop the reads ahead still running (at shutdown, before the store closes under
        them) and wait until they have stopped."""
        running = list(self._reads_ahead.values())
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)

    async def _after_read_ahead(self, series: _Series) -> None:
        """Wait for the series' read-ahead, if one is running (its outcome does not matter)."""
        task = self._reads_ahead.get(series)
        if task is not None:
            await asyncio.wait([task])

    def series_lock(self, exchange_name: str, coin_symbol: str, timeframe: str) -> asyncio.Lock:
        """The lock that serialises this process's writes of one series' history."""
        return self._series_locks.setdefault(
            _Series(exchange_name, coin_symbol, timeframe), asyncio.Lock()
        )

    async def fetch_data(
        self, exchange_name: str, coin_symbol: str, timeframe: str, start_time: int, end_time: int
    ) -> CandleTable:
        """Exactly the closed candles the exchange has in ``[start_time, end_time)``, ascending.

        Stored ranges are served without any exchange call. Raises UnknownSymbolError for a
        symbol the exchange does not list and nothing is stored for.
        """
        result = await self.fetch_range(exchange_name, coin_symbol, timeframe, start_time, end_time)
        return result.candles

    async def fetch_range(
        self,
        exchange_name: str,
        coin_symbol: str,
        timeframe: str,
        start_time: int,
        end_time: int,
        *,
        deadline: float | None = None,
    ) -> FetchResult:
        """The closed candles of ``[start_time, end_time)`` up to where the range was read.

        With a ``deadline`` (``time.monotonic()``), filling stops once it has passed and at
        least one exchange call's candles are stored; what is stored is returned, and
        ``reached`` says where to go on. Years before the series' first candle (and after
        the last one of a market that stopped trading) cost no exchange call.
        """
        timeframe_ms = timeframe_to_ms(timeframe)
        window = TimeRange(
            align_up(start_time, timeframe_ms),
            min(align_up(end_time, timeframe_ms), closed_end(self.now(), timeframe_ms)),
        )
        if window.end <= window.start:
            return FetchResult(CandleTable.empty(), max(window.start, window.end))
        series = _Series(exchange_name, coin_symbol, timeframe)
        await self._after_read_ahead(series)
        stored = await self._storage.get_range_with_coverage(*series, window.start, window.end)
        if not subtract_ranges(window, stored.covered):
            return FetchResult(stored.candles, window.end, sealed=stored.sealed)

        async with self.series_lock(*series):
            # Another request may have filled the gap while this one waited.
            stored = await self._storage.get_range_with_coverage(*series, window.start, window.end)
            gaps = subtract_ranges(window, stored.covered)
            if not gaps:
                return FetchResult(stored.candles, window.end)
            bounds = await self._storage.get_series_bounds(*series)
            client = self._connector.get_client(exchange_name)
            if not await client.check_coin_availability(coin_symbol):
                if len(stored.candles) or await self._storage.check_coin_exists(
                    exchange_name, coin_symbol
                ):
                    # Delisted: serve what is stored, there is nothing left to fetch.
                    return FetchResult(stored.candles, self._beyond(window, bounds, timeframe_ms))
                raise UnknownSymbolError.not_listed(exchange_name, coin_symbol)
            fill = _Fill(self, series, client, window, deadline)
            bounds = await fill.run(gaps, bounds)
        fetched = CandleTable.from_candles(fill.fetched).between(window.start, fill.reached)
        candles = stored.candles.between(window.start, fill.reached).merge(fetched)
        reached = (
            self._beyond(window, bounds, timeframe_ms)
            if fill.reached == window.end
            else fill.reached
        )
        return FetchResult(candles, reached)

    def _beyond(self, window: TimeRange, bounds: SeriesBounds, timeframe_ms: int) -> int:
        """Where a read that has all of ``window`` goes on: past the years before the first
        candle, and past the end of a market that stopped trading, where nothing opens."""
        if bounds.empty_from is not None and window.end >= bounds.empty_from:
            return max(window.end, closed_end(self.now(), timeframe_ms))
        return max(window.end, bounds.empty_before)

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

    def grace_cutoff(self, now: int, timeframe_ms: int) -> int:
        """Empty answers after this are not remembered: exchanges publish late."""
        return align_down(now - self._empty_fetch_grace_ms, timeframe_ms)

    def covered_by(self, fetched: TimeRange, candles: list[Candle], timeframe_ms: int) -> TimeRange:
        """The part of a fetched window that may be recorded as covered.

        An empty tail within the grace period before now is left unrecorded: exchanges
        publish late, and a candle that is missing now may still appear.
        """
        cutoff = self.grace_cutoff(self.now(), timeframe_ms)
        if fetched.end <= cutoff:
            return fetched
        tail_start = candles[-1].timestamp + timeframe_ms if candles else fetched.start
        return TimeRange(fetched.start, min(fetched.end, max(tail_start, cutoff, fetched.start)))


class _Fill:
    """One gap-fill of one series: the edges of its history first, then the gaps' exchange
    calls, in order, stored in parts as they arrive, until done or the deadline."""

    def __init__(
        self,
        fetcher: HistoricalFetcher,
        series: _Series,
        client: IExchangeAPIClient,
        window: TimeRange,
        deadline: float | None,
    ) -> None:
        self._fetcher = fetcher
        self._storage = fetcher._storage
        self._series = series
        self._client = client
        self._window = window
        self._deadline = deadline
        self._timeframe_ms = timeframe_to_ms(series.timeframe)
        self._per_call = client.get_max_candles_per_call(series.timeframe)
        self._call_span = self._per_call * self._timeframe_ms
        self._now = fetcher.now()
        self._horizon = closed_end(self._now, self._timeframe_ms)
        self._cutoff = fetcher.grace_cutoff(self._now, self._timeframe_ms)
        self._life_start: int | None = None
        self._done: list[TimeRange] = []
        self._progressed = False
        """Whether this fill has stored anything or moved the series' bounds."""
        self.fetched: list[Candle] = []
        self.reached = window.end
        """Where the window is read up to: its end, or the first call not stored."""

    async def run(self, gaps: list[TimeRange], bounds: SeriesBounds) -> SeriesBounds:
        """Fill ``gaps``: first learn where the series' history ends (for a market that
        stopped trading) and starts, so no call walks into years without candles; then the
        gaps' calls. The series bounds after it."""
        bounds = await self._find_end(_within_life(gaps, bounds), bounds)
        gaps = _within_life(gaps, bounds)
        if not gaps:
            return bounds
        gaps = await self._fetcher._stretch_to_whole_calls(*self._series, gaps, self._call_span)
        bounds = await self._find_start(gaps, bounds)
        await self._fill(_without(_within_life(gaps, bounds), self._done))
        return bounds

    async def _find_end(self, gaps: list[TimeRange], bounds: SeriesBounds) -> SeriesBounds:
        """For a market that no longer trades, the end of its history (once); a market that
        trades again has its end cleared."""
        trading = await self._client.check_coin_trading(self._series.symbol)
        if trading and bounds.empty_from is not None:
            return await self._save_bounds(SeriesBounds(), clear_empty_from=True)
        if trading or bounds.empty_from is not None or not gaps:
            return bounds
        edge = await self._find_edge(bounds, first=False)
        last_end = edge.candles[-1].timestamp + self._timeframe_ms if edge.candles else None
        if last_end is None and edge.window.end > bounds.empty_before:
            last_end = edge.window.end
        if last_end is not None:
            return await self._save_bounds(SeriesBounds(empty_from=last_end))
        return await self._save_bounds(SeriesBounds(min(self._horizon, self._cutoff)))

    async def _find_start(self, gaps: list[TimeRange], bounds: SeriesBounds) -> SeriesBounds:
        """Where the series' history starts, if the gaps' first call answers empty: the
        years before a listing are then skipped rather than walked."""
        if bounds.first_candle is not None:
            self._life_start = bounds.first_candle
            return bounds
        # The first call of the (stretched) gaps, alone.
        lead = TimeRange(gaps[0].start, min(gaps[0].start + self._call_span, gaps[0].end))
        if lead.end > self._cutoff:
            return bounds  # an empty answer this close to now proves nothing
        candles = await self._fetch(lead)
        if candles:
            self._life_start = candles[0].timestamp
            await self._store([(lead, candles)])
            return bounds
        edge = await self._find_edge(bounds, first=True)
        if edge.candles:
            first = edge.candles[0].timestamp
            bounds = await self._save_bounds(SeriesBounds(first, first))
            self._life_start = first
        elif min(edge.window.start, self._cutoff) > bounds.empty_before:
            bounds = await self._save_bounds(SeriesBounds(min(edge.window.start, self._cutoff)))
        if self._life_start is not None and self._life_start < lead.start:
            # The empty lead lies inside the series' life: ask once more before it is believed.
            await self._store([(lead, await self._fetch(lead, reasked=True))])
        return bounds

    async def _fill(self, gaps: list[TimeRange]) -> None:
        """Fetch and store ``gaps`` (whole calls) in order, up to the deadline."""
        if not gaps:
            return
        calls = [
            TimeRange(first, min(first + self._call_span, gap.end))
            for gap in gaps
            for first in range(gap.start, gap.end, self._call_span)
        ]
        part_calls = max(MIN_PART_CALLS, -(-len(calls) // FILL_PARTS))
        tasks: list[asyncio.Future[list[Candle]]] = []
        batch: list[tuple[TimeRange, list[Candle]]] = []
        stored = 0
        try:
            for index, call in enumerate(calls):
                while len(tasks) < min(len(calls), index + CALLS_AHEAD):
                    tasks.append(asyncio.ensure_future(self._fetch(calls[len(tasks)])))
                progress = self._progressed or bool(batch)
                if not await self._arrives_in_time(tasks[index], progress=progress):
                    break
                batch.append((call, tasks[index].result()))
                if len(batch) >= part_calls:
                    await self._store(batch)
                    stored, batch = stored + len(batch), []
        finally:
            for task in tasks[stored + len(batch) :]:
                task.cancel()
            # Retrieve what they ended with, so a call that failed too is not logged as lost.
            await asyncio.gather(*tasks[stored + len(batch) :], return_exceptions=True)
            # The calls that arrived are stored even when a later one failed.
            if batch:
                await self._store(batch)
                stored += len(batch)
        if stored < len(calls):
            self.reached = min(self.reached, calls[stored].start)

    async def _arrives_in_time(self, task: asyncio.Future[list[Candle]], *, progress: bool) -> bool:
        """Wait for ``task``; past the deadline, only until some progress is made."""
        if self._deadline is None or not progress:
            await asyncio.wait([task])
            return True
        remaining = self._deadline - time.monotonic()
        if remaining > 0:
            await asyncio.wait([task], timeout=remaining)
        return task.done()

    async def _fetch(self, call: TimeRange, *, reasked: bool = False) -> list[Candle]:
        """One exchange call's candles; inside the series' known life, an empty answer is
        asked once more (by the plugin) before it is believed."""
        life = None
        if not reasked and self._life_start is not None and self._life_start < self._cutoff:
            life = TimeRange(self._life_start, self._cutoff)
        candles = await self._fetcher._connector.fetch_historical_data(
            *self._series, call.start, call.end, expect_candles=life
        )
        if reasked and not candles:
            self._log(
                "history.empty_window",
                level=logging.WARNING,
                start_ms=call.start,
                end_ms=call.end,
                answers=2,
            )
        return candles

    async def _find_edge(self, bounds: SeriesBounds, *, first: bool) -> EdgeWindow:
        """Search the series' life as far as known for its first or last candle, and store
        the call window found."""
        edge = await self._client.find_history_edge(
            self._series.symbol,
            self._series.timeframe,
            bounds.empty_before,
            self._horizon,
            first=first,
            deadline=self._deadline,
        )
        if edge.candles:
            await self._store([(edge.window, edge.candles)])
        self._log(
            "history.edge",
            edge_window_start_ms=edge.window.start,
            edge_window_end_ms=edge.window.end,
            candles=len(edge.candles),
            exchange_calls=edge.calls,
        )
        return edge

    async def _store(self, calls: list[tuple[TimeRange, list[Candle]]]) -> None:
        """Store consecutive calls' candles with the coverage they prove, in one save."""
        began = time.monotonic()
        candles = [candle for _, call_candles in calls for candle in call_candles]
        covered = [
            self._fetcher.covered_by(call, call_candles, self._timeframe_ms)
            for call, call_candles in calls
        ]
        await self._storage.save_bulk_entries(
            *self._series, candles, covered=[r for r in covered if r.end > r.start]
        )
        self.fetched.extend(candles)
        self._done.extend(call for call, _ in calls)
        self._progressed = True
        self._log(
            "history.fill",
            start_ms=calls[0][0].start,
            end_ms=calls[-1][0].end,
            requested_start_ms=self._window.start,
            requested_end_ms=self._window.end,
            candles_fetched=len(candles),
            covered_end_ms=max(r.end for r in covered),
            exchange_calls=len(calls),
            empty_calls=sum(not call_candles for _, call_candles in calls),
            duration_ms=round((time.monotonic() - began) * 1000),
        )

    def _log(self, event: str, /, *, level: int = logging.INFO, **fields: object) -> None:
        """A structured event about this fill's series."""
        log_event(logger, event, level=level, **self._series._asdict(), **fields)

    async def _save_bounds(
        self, bounds: SeriesBounds, *, clear_empty_from: bool = False
    ) -> SeriesBounds:
        saved = await self._storage.save_series_bounds(
            *self._series, bounds, clear_empty_from=clear_empty_from
        )
        self._progressed = True
        self._log(
            "history.bounds",
            empty_before_ms=saved.empty_before,
            first_candle_ms=saved.first_candle,
            empty_from_ms=saved.empty_from,
        )
        return saved


def _within_life(gaps: list[TimeRange], bounds: SeriesBounds) -> list[TimeRange]:
    """The parts of ``gaps`` where the series' bounds allow candles."""
    life = TimeRange(bounds.empty_before, bounds.empty_from or MAX_TIMESTAMP)
    return clip_ranges(gaps, life) if life.end > life.start else []


def _without(gaps: list[TimeRange], done: list[TimeRange]) -> list[TimeRange]:
    """``gaps`` less the windows already fetched."""
    return [rest for gap in gaps for rest in subtract_ranges(gap, done)]
