"""Pages of an exchange's own calendar candles (``1w``, ``1M``, ``3d`` where offered), stored
by their open times and gap-filled by time (:mod:`.timed_pages`).

Only closed candles are served: a candle is closed once its span
(:mod:`~cbtrade.calendar_timeframes`) has passed, and a read stops where no candle can have
closed yet. What is recorded as fetched must not hide a candle that may still appear: the
forming candle (served once closed) and a closed one the exchange has not published yet
(exchanges publish late). So a window is recorded as fetched up to where every candle
opening before it has closed at least the grace period ago
(``CBTRADE_EMPTY_FETCH_GRACE_SECONDS``), or, where the answer shows more, up to its newest
candle (excluded while it forms, included once closed): exchanges publish candles in order.
A window reaching the read's end is asked up to now, so its forming candle shows the rest.
"""

from __future__ import annotations

from collections.abc import Callable

from cbtrade.calendar_timeframes import CandleSpan
from cbtrade.candle_table import CandleTable
from cbtrade.exchange_source.interfaces import CandleWindow, IDataSourceConnector
from cbtrade.historical.timed_pages import FetchedWindow, read_timed_page
from cbtrade.historical.tokens import PageCursor
from cbtrade.models import TimeRange
from cbtrade.storage.calendar_store import CalendarCandleStore
from cbtrade.storage.interfaces import SeriesSummary


class CalendarCandles:
    """Serves an exchange's own calendar candles page by page, stored by open time, and
    their catalog entries."""

    def __init__(
        self,
        store: CalendarCandleStore,
        connector: IDataSourceConnector,
        *,
        grace_ms: int,
        clock: Callable[[], int],
    ) -> None:
        self._store = store
        self._connector = connector
        self._grace_ms = grace_ms
        self._clock = clock

    async def read_page(
        self, query: PageCursor, span: CandleSpan, limit: int, *, deadline: float
    ) -> tuple[CandleTable, int | None]:
        """At most ``limit`` closed candles from ``query.cursor`` on, and the next page's
        cursor (None at the end)."""
        client = self._connector.get_client(query.exchange)
        now = self._clock()

        horizon = min(query.end, span.unclosed_from(now))

        async def fetch_window(start: int, end: int) -> FetchedWindow:
            # A window reaching the horizon is asked up to now: its forming candle shows that
            # everything before it is in, however recently the one before it closed.
            end = now + 1 if end >= horizon else end
            window = await client.fetch_calendar_window(query.symbol, query.timeframe, start, end)
            closed = [c for c in window.candles if span.end(c.timestamp) <= now]
            rows = CandleTable.from_candles(closed).arrow
            return FetchedWindow(rows, window.covered, self._settled(window, span, now))

        rows, next_cursor = await read_timed_page(
            self._store,
            self._store.folder(query.exchange, query.symbol, query.timeframe),
            TimeRange(query.cursor, horizon),
            limit,
            fetch_window,
            deadline=deadline,
        )
        return CandleTable.from_arrow(rows), next_cursor

    async def list_series(
        self, exchange_name: str, coin_symbol: str | None = None
    ) -> list[SeriesSummary]:
        """The catalog entries of the exchange's stored calendar candle series (or one
        symbol's)."""
        return await self._store.list_series(exchange_name, coin_symbol)

    def _settled(self, window: CandleWindow, span: CandleSpan, now: int) -> list[TimeRange]:
        """The part of ``window`` that may be recorded as fetched (see the module)."""
        covered = window.covered
        settled = span.final_before(now - self._grace_ms)
        if window.candles:
            newest = window.candles[-1].timestamp
            settled = max(settled, newest + 1 if span.end(newest) <= now else newest)
        end = min(covered.end, settled)
        return [TimeRange(covered.start, end)] if end > covered.start else []
