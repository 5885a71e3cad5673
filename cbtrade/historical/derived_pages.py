"""Pages of a derived timeframe: its base series read (and gap-filled) as a native request
would, and aggregated into whole, closed buckets."""

from __future__ import annotations

import time

from cbtrade.candle_aggregation import aggregate
from cbtrade.candle_table import CandleTable
from cbtrade.derived_timeframes import Buckets, TimeframePlan
from cbtrade.historical.fetcher import HistoricalFetcher
from cbtrade.historical.tokens import PageCursor


def derived_horizon(buckets: Buckets, end: int, now: int) -> int:
    """Where a derived query's buckets stop: the first bucket start at or after ``end``, or
    the start of the forming bucket (a bucket is served once it ended, all its base candles
    closed), whichever is earlier."""
    return min(buckets.ceil(end), buckets.floor(now))


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
    reads it again), so neither a page boundary nor the time budget splits a bucket."""
    buckets = plan.buckets
    assert buckets is not None, "a native timeframe is read by the manager"
    horizon = derived_horizon(buckets, query.end, fetcher.now())
    position = buckets.ceil(query.cursor)
    parts: list[CandleTable] = []
    count = 0
    while position < horizon and count < limit:
        stretch_end = min(buckets.advance(position, limit - count), horizon)
        stretch = await fetcher.fetch_range(
            query.exchange, query.symbol, plan.base, position, stretch_end, deadline=deadline
        )
        # Past stretch_end (nothing opens before it) or short of it (the deadline): the
        # bucket holding ``reached`` is read from its start by the next step or page.
        reached = buckets.floor(min(stretch.reached, horizon))
        whole = min(reached, stretch_end)
        part = aggregate(stretch.candles.between(position, whole), buckets)
        parts.append(part)
        count += len(part)
        position = reached
        if stretch.reached < stretch_end or time.monotonic() >= deadline:
            break
    return CandleTable.concat(parts), (position if position < horizon else None)
