"""Pages of a derived timeframe: its base series read (and gap-filled) as a native request
would, and aggregated into whole, closed buckets."""

from __future__ import annotations

import time

from cbtrade.candle_aggregation import aggregate
from cbtrade.candle_table import CandleTable
from cbtrade.derived_timeframes import Buckets, TimeframePlan
from cbtrade.historical.fetcher import HistoricalFetcher
from cbtrade.historical.tokens import PageCursor
from cbtrade.timeframes import timeframe_to_ms

MAX_BASE_CANDLES_PER_READ = 100_000
"""Base candles one read of a derived page holds at most (rounded to whole buckets, at
least one): a page of large buckets (``59m`` from ``1m``) is read in several stretches
rather than its whole span at once."""


def derived_horizon(buckets: Buckets, end: int, now: int) -> int:
    """Where a derived query's buckets stop: the first bucket start at or after ``end``, or
    the start of the forming bucket (a bucket is served once it ended, all its base candles
    closed), whichever is earlier."""
    return min(buckets.ceil(end), buckets.floor(now))


def first_unsettled(
    candles: CandleTable, buckets: Buckets, base_ms: int, lo: int, hi: int, settled: int
) -> int:
    """The start of the first bucket in ``[lo, hi)`` that may still change, else ``hi``.

    Exchanges publish late: within the grace period before now (from ``settled`` on) a
    missing base candle is not yet recorded as missing and may still arrive, so a bucket
    reaching past ``settled`` is final only when every base candle it has there is present.
    """
    start = max(lo, buckets.floor(settled))
    stamps = candles.between(start, hi).arrow.column("timestamp").to_numpy()
    while start < hi:
        end = buckets.advance(start, 1)
        tail = max(start, settled)
        present = int(((stamps >= tail) & (stamps < end)).sum())
        if present < -(-(end - tail) // base_ms):
            return start
        start = end
    return hi


async def read_derived_page(
    fetcher: HistoricalFetcher,
    query: PageCursor,
    plan: TimeframePlan,
    limit: int,
    *,
    deadline: float,
) -> tuple[CandleTable, int | None]:
    """At most ``limit`` buckets from ``query.cursor`` on, and the cursor of the next page
    (None at the end).

    Every stretch read ends at a bucket start, and a stretch the deadline cut short is
    served up to the last bucket it holds whole (the rest is stored, and the next page
    reads it again), so neither a page boundary nor the time budget splits a bucket. A
    bucket whose newest base candles are still within the grace period for late candles is
    served only once they are all in: the query ends before it (it is not the client's to
    wait for), and a later query serves it."""
    buckets = plan.buckets
    assert buckets is not None, "a native timeframe is read by the manager"
    base_ms = timeframe_to_ms(plan.base)
    now = fetcher.now()
    settled = fetcher.grace_cutoff(now, base_ms)
    horizon = derived_horizon(buckets, query.end, now)
    position = buckets.ceil(query.cursor)
    parts: list[CandleTable] = []
    count = 0
    while position < horizon and count < limit:
        bounded = max(
            buckets.advance(position, 1),
            buckets.floor(position + MAX_BASE_CANDLES_PER_READ * base_ms),
        )
        stretch_end = min(buckets.advance(position, limit - count), horizon, bounded)
        stretch = await fetcher.fetch_range(
            query.exchange, query.symbol, plan.base, position, stretch_end, deadline=deadline
        )
        # Past stretch_end (nothing opens before it) or short of it (the deadline): the
        # bucket holding ``reached`` is read from its start by the next step or page.
        reached = buckets.floor(min(stretch.reached, horizon))
        whole = min(reached, stretch_end)
        if whole > settled:
            final = first_unsettled(stretch.candles, buckets, base_ms, position, whole, settled)
            if final < whole:
                whole = reached = horizon = final
        part = aggregate(stretch.candles.between(position, whole), buckets)
        parts.append(part)
        count += len(part)
        position = reached
        if stretch.reached < stretch_end or time.monotonic() >= deadline:
            break
    return CandleTable.concat(parts), (position if position < horizon else None)
