"""HistoricalDataManagerImpl: page-bounded, gap-filled delivery with continuation tokens."""

from __future__ import annotations

import time

from cbtrade.candle_table import CandleTable
from cbtrade.derived_timeframes import TimeframePlan, plan_timeframe
from cbtrade.errors import CbTradeError, InvalidTimeframeError
from cbtrade.exchange_source.interfaces import IDataSourceConnector
from cbtrade.historical.calendar_pages import CalendarCandles
from cbtrade.historical.current_fetcher import CurrentDataFetcher
from cbtrade.historical.derived_pages import read_derived_page
from cbtrade.historical.fetcher import HistoricalFetcher, closed_end
from cbtrade.historical.interfaces import IHistoricalDataManager, OhlcvPage
from cbtrade.historical.tokens import (
    ContinuationTokenCodec,
    PageCursor,
    PageLimits,
    page_query,
)
from cbtrade.timeframes import DEFAULT_TIMEFRAME, align_up, timeframe_to_ms


class HistoricalDataManagerImpl(IHistoricalDataManager):
    """Cuts a query into pages and gap-fills each page before returning it.

    A page covers a contiguous range with at most ``limit`` candles. The years before a
    series' first candle are skipped (the fetcher finds the listing with a few calls), so
    a page never comes back empty while the range still holds candles. When a stretch holds
    fewer candles than the limit (a quiet market), the page reads on into the next stretch
    until it has ``limit`` candles or its time budget is spent. The budget bounds the
    page's wall time, not only its stretches: filling stops when it runs out, with what is
    stored returned and the rest left to the next page, so a page takes at most the budget
    plus one exchange call and a write (Azure Functions cuts an HTTP answer at 230 s).

    A timeframe the exchange does not offer is derived from a base timeframe it offers
    (:mod:`~cbtrade.derived_timeframes`): the base series is read and gap-filled as for a
    native page, and aggregated into whole, closed buckets (:mod:`.derived_pages`); such
    pages are never sealed, so no cache keeps them as the base's. An exchange's own calendar
    timeframes (``1w``, ``1M``, ``3d`` where offered) are stored by their open times, on the
    exchange's own grid, and paged by time (:mod:`.calendar_pages`); never sealed either.
    """

    _MAX_PLANS = 1_024

    def __init__(
        self,
        fetcher: HistoricalFetcher,
        current_fetcher: CurrentDataFetcher,
        connector: IDataSourceConnector,
        token_codec: ContinuationTokenCodec,
        *,
        default_limit: int = 20_000,
        max_limit: int = 100_000,
        page_time_budget_seconds: float = 20.0,
        calendar: CalendarCandles | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._calendar = calendar
        self._current_fetcher = current_fetcher
        self._connector = connector
        self._token_codec = token_codec
        self._limits = PageLimits(default_limit=default_limit, max_limit=max_limit)
        self._page_time_budget_seconds = page_time_budget_seconds
        self._plans: dict[tuple[str, str], TimeframePlan] = {}

    @property
    def fetcher(self) -> HistoricalFetcher:
        """The fetcher that reads and gap-fills the native series."""
        return self._fetcher

    @property
    def token_codec(self) -> ContinuationTokenCodec:
        """The codec of the continuation tokens (shared with other paged routes)."""
        return self._token_codec

    async def get_page(
        self,
        *,
        exchange_name: str | None = None,
        coin_symbol: str | None = None,
        timeframe: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int | None = None,
        continuation_token: str | None = None,
        default_limit: int | None = None,
        price: str | None = None,
    ) -> OhlcvPage:
        """The first page of a query, or the next one for ``continuation_token``.

        ``limit`` is the page size the client asked for; the token keeps it, so the pages
        that follow have it without being asked again (a limit repeated beside a token must
        match the token's). With none asked, each page has ``default_limit`` candles at most
        (the manager's default when None).
        """
        self._limits.check(limit)
        if (
            continuation_token is None
            and exchange_name is not None
            and coin_symbol is not None
            and start_time is not None
        ):
            # A bad timeframe is named before any other problem of the query.
            self.plan_timeframe(exchange_name, timeframe or DEFAULT_TIMEFRAME)
        query = page_query(
            self._token_codec,
            continuation_token,
            funding=False,
            exchange_name=exchange_name,
            coin_symbol=coin_symbol,
            timeframe=timeframe,
            start_time=start_time,
            end_time=end_time,
            limit=limit,
            price=price,
            now=self._fetcher.now,
        )
        # Unknown exchanges and timeframes fail here, before any storage or exchange I/O.
        plan = self.plan_timeframe(query.exchange, query.timeframe)
        page_limit = self._limits.of(query.limit, default_limit)
        deadline = time.monotonic() + self._page_time_budget_seconds
        sealed = False
        if plan.span is not None:
            assert self._calendar is not None, "without a store, plan_timeframe refuses them"
            candles, next_cursor = await self._calendar.read_page(
                query, plan.span, page_limit, deadline=deadline
            )
        elif plan.buckets is not None:
            candles, next_cursor = await read_derived_page(
                self._fetcher, query, plan, page_limit, deadline=deadline
            )
        else:
            candles, next_cursor, sealed = await self._read_page(query, page_limit)
        token = None
        if next_cursor is not None:
            token = self._token_codec.encode(query.model_copy(update={"cursor": next_cursor}))
            self._read_ahead(query, plan, next_cursor, page_limit)
        return OhlcvPage(
            query.exchange,
            query.symbol,
            query.timeframe,
            candles,
            token,
            sealed,
            derived_from=plan.derived_from,
        )

    def _read_ahead(
        self, query: PageCursor, plan: TimeframePlan, cursor: int, page_limit: int
    ) -> None:
        """Start filling the next page's base candles (calendar candles are not read ahead:
        a page of them is one or two calls)."""
        if plan.span is not None:
            return
        if plan.buckets is None:
            span_end = cursor + page_limit * timeframe_to_ms(query.timeframe)
        else:
            span_end = plan.buckets.advance(cursor, page_limit)
        self._fetcher.read_ahead(
            query.exchange, query.symbol, plan.base, cursor, min(query.end, span_end)
        )

    def plan_timeframe(self, exchange_name: str, timeframe: str) -> TimeframePlan:
        """How ``exchange_name`` serves ``timeframe``: natively or derived from a base
        (UnknownExchangeError, InvalidTimeframeError otherwise). Kept per process: what an
        exchange offers does not change while it runs."""
        key = (exchange_name, timeframe)
        plan = self._plans.get(key)
        if plan is None:
            client = self._connector.get_client(exchange_name)
            plan = plan_timeframe(
                timeframe, exchange=exchange_name, offered=client.offered_timeframes()
            )
            if plan.span is None:
                client.check_timeframe(plan.base)
            elif self._calendar is None:
                raise InvalidTimeframeError(
                    f"{exchange_name} offers {timeframe!r} candles, but this service is "
                    "configured without a store for them"
                )
            if len(self._plans) >= self._MAX_PLANS:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    async def get_most_recent_timestamp(
        self, exchange_name: str, coin_symbol: str, timeframe: str
    ) -> int | None:
        """Epoch ms of the newest stored candle of the series, or None when nothing is
        stored for a series the exchange serves. UnknownExchangeError, UnknownSymbolError
        (a symbol the exchange does not list) or InvalidTimeframeError (one it does not
        offer) otherwise, so that a typo is not mistaken for an empty series.

        A stored series is answered from storage alone (a symbol since delisted included);
        only an empty one is checked with the exchange's markets, loaded once per process.
        """
        client = self._connector.get_client(exchange_name)
        client.check_timeframe(timeframe)
        latest = await self._current_fetcher.get_latest_timestamp(
            exchange_name, coin_symbol, timeframe
        )
        if latest is None:
            await client.check_series(coin_symbol, timeframe)
        return latest

    async def sealed_epoch(
        self,
        *,
        exchange_name: str | None,
        coin_symbol: str | None,
        timeframe: str | None,
        continuation_token: str | None,
    ) -> int | None:
        """The sealed-data epoch of the series a page request names (by its parameters or its
        token): a sealed page may be kept under it. None when it cannot tell (no sealing, or
        bad input, which :meth:`get_page` then reports)."""
        try:
            if continuation_token is not None:
                query = self._token_codec.decode(continuation_token)
                series = (query.exchange, query.symbol, query.timeframe)
            elif exchange_name is not None and coin_symbol is not None:
                series = (exchange_name, coin_symbol, timeframe or DEFAULT_TIMEFRAME)
            else:
                return None
            plan = self.plan_timeframe(series[0], series[2])
            if plan.buckets is not None or plan.span is not None:
                return None  # derived and calendar pages are never sealed
            return await self._fetcher.sealed_epoch(*series)
        except CbTradeError:
            return None

    async def _read_page(
        self, query: PageCursor, limit: int
    ) -> tuple[CandleTable, int | None, bool]:
        """Candles from ``query.cursor`` on, the cursor of the next page (None at the end), and
        whether every stretch was read from sealed objects."""
        timeframe_ms = timeframe_to_ms(query.timeframe)
        horizon = min(
            align_up(query.end, timeframe_ms), closed_end(self._fetcher.now(), timeframe_ms)
        )
        deadline = time.monotonic() + self._page_time_budget_seconds
        position = align_up(query.cursor, timeframe_ms)
        stretches: list[CandleTable] = []
        sealed = True
        count = 0
        while position < horizon and count < limit:
            stretch_end = min(position + (limit - count) * timeframe_ms, horizon)
            stretch = await self._fetcher.fetch_range(
                query.exchange,
                query.symbol,
                query.timeframe,
                position,
                stretch_end,
                deadline=deadline,
            )
            stretches.append(stretch.candles)
            sealed = sealed and stretch.sealed
            count += len(stretch.candles)
            position = min(stretch.reached, horizon)
            if time.monotonic() >= deadline:
                break
        next_cursor = position if position < horizon else None
        return CandleTable.concat(stretches), next_cursor, sealed and bool(stretches)
