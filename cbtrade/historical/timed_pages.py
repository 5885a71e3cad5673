"""Pages of a series stored by its rows' own timestamps (funding events, an exchange's own
calendar candles): what is stored read first, the gaps then filled in order.

A page reads what is stored from its cursor on, then fills the gaps in order, one exchange
call at a time, each call's rows stored with the range that may be recorded as fetched,
until the stretch covered from the cursor holds more than a page of rows, reaches the
query's horizon, or the page's time budget is spent (the first call is made whatever the
budget says, so every page makes progress).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import pyarrow as pa

from cbtrade.models import TimeRange
from cbtrade.storage.timed_store import TimedRowStore, merge_rows, rows_between
from cbtrade.time_ranges import merge_ranges


class FetchedWindow(NamedTuple):
    """What one exchange call answered for a window ``[start, end)``."""

    rows: pa.Table
    """The rows to serve and store, ascending, in the store's schema."""
    covered: TimeRange
    """Every row of this range (from the window's start) is in ``rows``: how far the page
    may read on."""
    settled: list[TimeRange]
    """What may be recorded as fetched: ``covered`` but for what may still change (the
    grace period for late rows before now)."""


FetchWindow = Callable[[int, int], Awaitable[FetchedWindow]]
"""One exchange call for the window ``[start, end)``."""


def covered_from(position: int, covered: list[TimeRange]) -> int:
    """Where the stretch of ``covered`` (merged, ascending) that starts at or before
    ``position`` and contains it ends; ``position`` if none does."""
    reached = position
    for start, end in covered:
        if start > reached:
            break
        reached = max(reached, end)
    return reached


async def read_timed_page(
    store: TimedRowStore,
    folder: str,
    span: TimeRange,
    limit: int,
    fetch_window: FetchWindow,
    *,
    deadline: float,
) -> tuple[pa.Table, int | None]:
    """At most ``limit`` rows of ``span`` (from the page's cursor to the query's horizon)
    stored under ``folder``, gap-filled with ``fetch_window``, and the next page's cursor
    (None at the end)."""
    position, horizon = span
    if position >= horizon:
        return store.empty(), None
    stored = await store.read_rows(folder, position, horizon)
    rows, covered = stored.rows, stored.covered
    fetched = False
    while True:
        reached = covered_from(position, covered)
        if reached >= horizon or (fetched and time.monotonic() >= deadline):
            break
        if rows_between(rows, position, reached).num_rows > limit:
            break
        gap_end = next((r.start for r in covered if r.start > reached), horizon)
        window = await fetch_window(reached, gap_end)
        await store.save_rows(folder, window.rows, covered=window.settled)
        rows = merge_rows(rows, window.rows)
        covered = merge_ranges([*covered, window.covered])
        fetched = True
    page = rows_between(rows, position, min(reached, horizon))
    if page.num_rows > limit:
        return page.slice(0, limit), int(page.column("timestamp")[limit].as_py())
    return page, reached if reached < horizon else None
