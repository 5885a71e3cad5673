"""Top-up of watched series: what the timer plans and the queue function does."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from cbtrade.config import WatchedSeries
from cbtrade.errors import PERMANENT_ERRORS, CbTradeError
from cbtrade.historical.fetcher import HistoricalFetcher
from cbtrade.telemetry import log_event
from cbtrade.work.items import TopUpItem

if TYPE_CHECKING:
    from cbtrade.work.queue import WorkQueueClient

logger = logging.getLogger(__name__)

SERIES_IN_FLIGHT = 64
"""Series of one run topped up at once. The exchanges' rate budgets pace their calls; this
bounds the storage reads and writes in flight beside them."""


class TopUpResult(NamedTuple):
    """The outcome of topping up one series."""

    series: WatchedSeries
    candles: int
    """Candles in the top-up window after the run (stored and fetched)."""
    error: str | None
    retryable: bool = False
    """Whether the error may pass on a retry (an outage, a rate limit), not a bad series."""


class TopUpRunner:
    """Brings watched series up to the newest closed candle.

    Each top-up gap-fills the window from ``max_backfill_ms`` before now to now, so it is
    idempotent (covered ranges cost no exchange call) and catches up after missed runs, as
    far back as the backfill bound. All series run concurrently: each exchange's rate budget
    paces its calls, and the storage reads and writes of one series overlap the others'
    exchange calls. A failing series is logged and the others still run.
    """

    def __init__(
        self,
        fetcher: HistoricalFetcher,
        watchlist: Sequence[WatchedSeries],
        *,
        max_backfill_ms: int,
        series_per_item: int = 10,
    ) -> None:
        self._fetcher = fetcher
        self._watchlist = list(watchlist)
        self._max_backfill_ms = max_backfill_ms
        self._series_per_item = series_per_item

    def plan(self) -> list[TopUpItem]:
        """The watchlist as work items: up to ``series_per_item`` series of one exchange each."""
        by_exchange: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
        for series in self._watchlist:
            by_exchange[series.exchange].append((series.symbol, series.timeframe))
        step = self._series_per_item
        return [
            TopUpItem(exchange=exchange, series=pairs[first : first + step])
            for exchange, pairs in by_exchange.items()
            for first in range(0, len(pairs), step)
        ]

    async def tick(self, queue: WorkQueueClient | None) -> None:
        """The timer's job: put the watchlist on the top-up queue as items, or, with no
        queue, top every series up in this process.

        A tick finding as many items still waiting as it would send skips: the last tick's
        items have not run yet, and each tops its series up to the newest candle when it
        does, so more copies would only pile up behind them.
        """
        if queue is None:
            await self.run()
            return
        items = self.plan()
        waiting = await queue.approximate_count()
        if items and waiting >= len(items):
            log_event(logger, "topup.skipped", level=logging.WARNING, waiting_items=waiting,
                      work_items=len(items))  # fmt: skip
            return
        await queue.send(items)
        log_event(logger, "topup.planned", series=len(self._watchlist), work_items=len(items))

    async def run(self) -> list[TopUpResult]:
        """Top up every watched series once; one result per series, in watchlist order."""
        return await self.run_series(self._watchlist)

    async def run_item(self, item: TopUpItem) -> list[TopUpResult]:
        """Top up the series of one work item."""
        return await self.run_series(
            [WatchedSeries(item.exchange, symbol, timeframe) for symbol, timeframe in item.series]
        )

    async def run_series(self, watched: Sequence[WatchedSeries]) -> list[TopUpResult]:
        """Top up ``watched`` concurrently; one result per series, in order."""
        began = time.monotonic()
        in_flight = asyncio.Semaphore(SERIES_IN_FLIGHT)

        async def bounded(series: WatchedSeries) -> TopUpResult:
            async with in_flight:
                return await self._top_up(series)

        results = await asyncio.gather(*(bounded(series) for series in watched))
        log_event(
            logger,
            "topup.run",
            series=len(results),
            failed=sum(result.error is not None for result in results),
            candles_in_window=sum(result.candles for result in results),
            duration_ms=round((time.monotonic() - began) * 1000),
        )
        return list(results)

    async def _top_up(self, series: WatchedSeries) -> TopUpResult:
        now = self._fetcher.now()
        start = now - self._max_backfill_ms
        try:
            candles = await self._fetcher.fetch_data(
                series.exchange, series.symbol, series.timeframe, start, now
            )
        except CbTradeError as exc:
            log_event(
                logger,
                "topup.failed",
                level=logging.WARNING,
                exchange=series.exchange,
                symbol=series.symbol,
                timeframe=series.timeframe,
                error_type=exc.code,
                error=str(exc),
            )
            permanent = isinstance(exc, PERMANENT_ERRORS)
            return TopUpResult(series, 0, f"{exc.code}: {exc}", retryable=not permanent)
        return TopUpResult(series, len(candles), None)
