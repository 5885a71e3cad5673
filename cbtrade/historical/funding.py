"""FundingHistory: contracts' funding-rate histories, gap-filled and served page by page.

A page reads what is stored from its cursor on, then fills the gaps in order, one exchange
call at a time (:meth:`~cbtrade.exchange_source.interfaces.IExchangeAPIClient.
fetch_funding_window`), each call's events stored with the range its answer is complete
for, until the stretch covered from the cursor holds more than a page of events, reaches the
query's end, or the page's time budget is spent. Coverage never reaches past the time of the
fetch: the newest published event is final (funding events are not forming, as the newest
candle is), and the next read asks only for what came after. Exchanges publish an event a
little after its time, though: within the grace period before now (``grace_ms``, the
settings' ``CBTRADE_EMPTY_FETCH_GRACE_SECONDS``) an answer's events are stored and served but
the time after its newest event is not recorded as covered, so a late event is still asked
for by the next read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import pyarrow as pa

from cbtrade.exchange_source.interfaces import FundingWindow, IDataSourceConnector
from cbtrade.historical.timed_pages import FetchedWindow, read_timed_page
from cbtrade.historical.tokens import (
    ContinuationTokenCodec,
    PageCursor,
    PageLimits,
    page_query,
)
from cbtrade.models import TimeRange
from cbtrade.storage.funding_store import FundingStore, funding_table


class FundingPage(NamedTuple):
    """One page of a contract's funding history: ascending events, at most ``limit``."""

    exchange: str
    symbol: str
    events: pa.Table
    """Columns ``timestamp`` (int64, epoch ms UTC) and ``rate`` (float64)."""
    continuation_token: str | None
    """Token for the rest of the range, or None on the last page."""


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class FundingHistory:
    """Serves funding-rate histories page by page with continuation tokens, as
    :class:`~cbtrade.historical.manager.HistoricalDataManagerImpl` serves candles."""

    def __init__(
        self,
        store: FundingStore,
        connector: IDataSourceConnector,
        token_codec: ContinuationTokenCodec,
        *,
        default_limit: int = 20_000,
        max_limit: int = 100_000,
        page_time_budget_seconds: float = 20.0,
        grace_ms: int = 3_600_000,
        clock: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        self._store = store
        self._connector = connector
        self._token_codec = token_codec
        self._limits = PageLimits(default_limit=default_limit, max_limit=max_limit)
        self._page_time_budget_seconds = page_time_budget_seconds
        self._grace_ms = grace_ms
        self._clock = clock

    async def get_page(
        self,
        *,
        exchange_name: str | None = None,
        coin_symbol: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int | None = None,
        continuation_token: str | None = None,
        default_limit: int | None = None,
    ) -> FundingPage:
        """The first page of a query (``end`` defaults to now, fixed for the query), or the
        next one for ``continuation_token``, which keeps the query's ``limit``."""
        self._limits.check(limit)
        query = page_query(
            self._token_codec,
            continuation_token,
            funding=True,
            exchange_name=exchange_name,
            coin_symbol=coin_symbol,
            timeframe=None,
            start_time=start_time,
            end_time=end_time,
            limit=limit,
            now=self._clock,
        )
        page_limit = self._limits.of(query.limit, default_limit)
        events, next_cursor = await self._read_page(query, page_limit)
        token = None
        if next_cursor is not None:
            token = self._token_codec.encode(query.model_copy(update={"cursor": next_cursor}))
        return FundingPage(query.exchange, query.symbol, events, token)

    def _settled(self, window: FundingWindow) -> list[TimeRange]:
        """The part of ``window``'s coverage that may be recorded: all of it up to the grace
        period before now, and up to its newest event after that (published in order, so
        everything before it is in)."""
        covered = window.covered
        cutoff = self._clock() - self._grace_ms
        if covered.end <= cutoff:
            return [covered]
        newest = window.events[-1].timestamp + 1 if window.events else covered.start
        end = min(covered.end, max(newest, cutoff))
        return [TimeRange(covered.start, end)] if end > covered.start else []

    async def _read_page(self, query: PageCursor, limit: int) -> tuple[pa.Table, int | None]:
        """At most ``limit`` events from ``query.cursor`` on, and the next page's cursor
        (None at the end)."""
        client = self._connector.get_client(query.exchange)

        async def fetch_window(start: int, end: int) -> FetchedWindow:
            window = await client.fetch_funding_window(query.symbol, start, end)
            return FetchedWindow(
                funding_table(window.events), window.covered, self._settled(window)
            )

        return await read_timed_page(
            self._store,
            self._store.folder(query.exchange, query.symbol),
            TimeRange(query.cursor, min(query.end, self._clock())),
            limit,
            fetch_window,
            deadline=time.monotonic() + self._page_time_budget_seconds,
        )
