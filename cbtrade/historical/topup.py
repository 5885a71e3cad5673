"""Top-up of watched series: the timer's job."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

from cbtrade.config import WatchedSeries
from cbtrade.errors import CbTradeError
from cbtrade.historical.fetcher import HistoricalFetcher
from cbtrade.telemetry import log_event

logger = logging.getLogger(__name__)


class TopUpResult(NamedTuple):
    """The outcome of topping up one series."""

    series: WatchedSeries
    candles: int
    """Candles in the top-up window after the run (stored and fetched)."""
    error: str | None


class TopUpRunner:
    """Brings every watched series up to the newest closed candle.

    Each run gap-fills the window from ``max_backfill_ms`` before now to now, so it is
    idempotent (covered ranges cost no exchange call) and catches up after missed runs, as
    far back as the backfill bound. Exchanges run in parallel, the series of one exchange in
    turn (they share its rate limit); a failing series is logged and the others still run.
    """

    def __init__(
        self,
        fetcher: HistoricalFetcher,
        watchlist: Sequence[WatchedSeries],
        *,
        max_backfill_ms: int,
    ) -> None:
        self._fetcher = fetcher
        self._watchlist = list(watchlist)
        self._max_backfill_ms = max_backfill_ms

    async def run(self) -> list[TopUpResult]:
        """Top up every watched series once; one result per series, in watchlist order."""
        by_exchange: defaultdict[str, list[WatchedSeries]] = defaultdict(list)
        for series in self._watchlist:
            by_exchange[series.exchange].append(series)
        began = time.monotonic()
        per_exchange = await asyncio.gather(
            *(self._run_exchange(series_list) for series_list in by_exchange.values())
        )
        results = {result.series: result for batch in per_exchange for result in batch}
        ordered = [results[series] for series in self._watchlist]
        failed = sum(result.error is not None for result in ordered)
        log_event(
            logger,
            "topup.run",
            series=len(ordered),
            failed=failed,
            candles_in_window=sum(result.candles for result in ordered),
            duration_ms=round((time.monotonic() - began) * 1000),
        )
        return ordered

    async def _run_exchange(self, series_list: list[WatchedSeries]) -> list[TopUpResult]:
        return [await self._top_up(series) for series in series_list]

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
            return TopUpResult(series, 0, f"{exc.code}: {exc}")
        return TopUpResult(series, len(candles), None)
