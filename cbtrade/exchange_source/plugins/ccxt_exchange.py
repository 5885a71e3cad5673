"""CCXTExchangeClient: candles from any ccxt exchange, with exact windows and retries.

ccxt is imported on first use, not at import time, and then only the exchanges in use
(:mod:`cbtrade.exchange_source.ccxt_import`): the Functions host must not pay for it at
start-up.

Windows. A range is read in windows of at most the exchange's maximum candles per call, and
every call asks for exactly its window (start inclusive, end exclusive, as an inclusive end
of ``end - 1`` ms), so a window never holds more candles than the call may return and it
comes back whole whichever end the exchange fills an over-full answer from. Where ccxt widens
the window itself (Crypto.com asks from one candle before ``since``), the plugin passes the
exchange's own window parameters. Calls for ``n`` candles are ``ceil(n / max_per_call)``.

Contracts and price types. Perpetual and dated futures are asked for by their ccxt unified
symbols (``BTC/USDT:USDT``, ``BTC/USDT:USDT-250328``); where a profile loads only spot markets
at first (Binance: one call instead of three), the contracts are loaded once, when a request
first names one. Mark, index and premium-index candles (a series symbol ``{symbol}@{price}``,
see :mod:`cbtrade.price_types`) go through ccxt's ``fetch_ohlcv`` with its ``price`` option,
where the exchange has them (ccxt's ``fetchMarkOHLCV`` and the like) and only for contracts.
A dated future has no candle opening at or after its expiry: nothing is asked from there on.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from cbtrade.calendar_timeframes import calendar_span
from cbtrade.errors import (
    ExchangeError,
    ExchangeHistoryUnavailableError,
    ExchangeUnavailableError,
    FundingHistoryUnavailableError,
    InvalidInputError,
    UnknownSymbolError,
    UnsupportedPriceTypeError,
)
from cbtrade.exchange_source.ccxt_import import import_ccxt_async
from cbtrade.exchange_source.history_edges import EdgeWindow, HistoryEdgeFinder
from cbtrade.exchange_source.interfaces import CandleWindow, FundingWindow, IExchangeAPIClient
from cbtrade.exchange_source.rate_budget import RateBudget
from cbtrade.models import Candle, FundingRate, TimeRange
from cbtrade.price_types import PRICE_TYPES, PriceType, split_series_symbol
from cbtrade.telemetry import log_event
from cbtrade.timeframes import (
    TIMEFRAME_MS,
    align_down,
    align_up,
    timeframe_to_ms,
    unsupported_timeframe,
)

logger = logging.getLogger(__name__)

DEFAULT_CALLS_IN_FLIGHT = 8
"""Exchange calls of one exchange client that may be in flight at once (the rate limit still
holds). The limit is shared by every range being fetched, and waiting windows go first come,
first served, so ranges asked one after the other are answered in that order. It caps the
call rate at calls in flight / round-trip time: 8 over an 80 ms link is 100 calls a second."""

Clock = Callable[[], int]
RateBudgetFactory = Callable[[float], RateBudget]
"""Makes the exchange's rate budget, given ccxt's own rate (``1000 / rateLimit`` units/s)."""
WindowParams = Callable[[int, int], dict[str, Any]]

SHORTEST_FUNDING_INTERVAL_MS = 3_600_000
"""Contracts settle funding every hour at most often (8h, 4h and 1h are usual)."""

_CCXT_PRICE: dict[PriceType, tuple[str, str]] = {
    "mark": ("mark", "fetchMarkOHLCV"),
    "index": ("index", "fetchIndexOHLCV"),
    "premium_index": ("premiumIndex", "fetchPremiumIndexOHLCV"),
}
"""Each price type other than trade: ccxt's ``price`` option and the ``has`` entry saying
the exchange offers it."""


def _until_params(start: int, end: int) -> dict[str, Any]:
    """ccxt's unified ``until`` (inclusive, ms): most exchanges map it to their end time."""
    return {"until": end - 1}


def _cryptocom_params(start: int, end: int) -> dict[str, Any]:
    """Crypto.com's own window; ccxt would otherwise start one candle before ``since``."""
    return {"start_ts": start, "end_ts": end - 1}


@dataclass(frozen=True, kw_only=True)
class ExchangeProfile:
    """What differs between exchanges, for the plugin's purposes."""

    ccxt_id: str
    max_per_call: int = 300
    window_params: WindowParams = _until_params
    history_depth: int | None = None
    """Candles the API serves back from now (Kraken: 720), or None for full history."""
    options: Mapping[str, Any] = field(default_factory=dict)
    transient_error_codes: tuple[str, ...] = ()
    """Exchange error codes that ccxt maps to a permanent error but that are worth a retry."""
    wide_windows: bool = True
    """The exchange answers a window of any width with at most ``limit`` candles, so one
    small call can ask whether years hold a candle (see ``history_edges``). Exchanges that
    reject windows wider than one call are searched with coarse candles instead."""
    contract_market_types: tuple[str, ...] = ()
    """ccxt ``fetchMarkets`` types loaded only once a request names a contract (a symbol
    with ``:``), added to those the profile's options load first."""
    funding_per_call: int = 100
    """The most funding events one funding-history call returns."""
    funding_fill: Literal["start", "end"] = "start"
    """Which end of a window an over-full funding-history answer is filled from: its
    ``start`` (the oldest events, as Binance) or its ``end`` (the newest)."""
    calendar_timeframes: tuple[str, ...] = ()
    """The exchange's own calendar timeframes (``3d``, ``1w``, ``1M``) whose candles are as
    long as their names say, served natively on its grid. Other calendar names ccxt lists
    are not taken as offered, so the service derives its own: their candles may be
    something else (Kraken's interval 21600 is 15 days, which ccxt calls ``2w``; Bitstamp's
    ``1w`` is 3 days)."""
    errors_without_envelope_by_status: bool = False
    """ccxt's adapter reads any error answer without the exchange's JSON envelope (an object
    with a ``code``), such as a gateway's 502 page, as a permanent error; judge such an answer
    by its HTTP status instead, as ccxt does for most exchanges: any 5xx is unavailable and
    retried, and so are the 4xx that ccxt maps to unavailable (400, 403, 404, 405, ...)."""


PROFILES: dict[str, ExchangeProfile] = {
    # Crypto.com answers 5xx with its own envelope; ccxt reads ERR_INTERNAL (50001) as final,
    # and a gateway's HTML error page too.
    "cryptocom": ExchangeProfile(
        ccxt_id="cryptocom",
        max_per_call=300,
        window_params=_cryptocom_params,
        transient_error_codes=("50001",),
        errors_without_envelope_by_status=True,
        # public/get-valuations answers the newest ``count`` values of its window.
        funding_per_call=300,
        funding_fill="end",
        calendar_timeframes=("1w", "2w", "1M"),
    ),
    # Spot markets first: one exchangeInfo call instead of three (spot, USD-M, COIN-M); the
    # USD-M contracts' one when a request first names a contract. COIN-M (inverse) contracts
    # are not loaded: Binance refuses their candle windows over 200 days, which the history
    # edge search's wide probes would ask for.
    "binance": ExchangeProfile(
        ccxt_id="binance",
        max_per_call=1000,
        options={"fetchMarkets": {"types": ["spot"]}},
        contract_market_types=("linear",),
        # Binance's fundingRate answers at most 1000, the oldest of the window first.
        funding_per_call=1000,
        funding_fill="start",
        calendar_timeframes=("3d", "1w", "1M"),
    ),
    "kraken": ExchangeProfile(
        ccxt_id="kraken", max_per_call=720, history_depth=720, calendar_timeframes=("1w",)
    ),
    # Coinbase documents that a window of more candles than one call returns is rejected.
    "coinbase": ExchangeProfile(ccxt_id="coinbase", max_per_call=300, wide_windows=False),
}


def _system_clock() -> int:
    return time.time_ns() // 1_000_000


def rewrite_origin(urls: Any, origin: str) -> Any:
    """``urls`` (ccxt's nested ``urls['api']``) with every URL moved to ``origin``, path kept."""
    if isinstance(urls, str):
        parts = urlsplit(urls)
        target = urlsplit(origin)
        return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))
    if isinstance(urls, dict):
        return {key: rewrite_origin(value, origin) for key, value in urls.items()}
    if isinstance(urls, list):
        return [rewrite_origin(value, origin) for value in urls]
    return urls


class CCXTExchangeClient(IExchangeAPIClient):
    """Reads closed candles from one exchange through ccxt's async API.

    One instance per exchange per process: it owns the ccxt exchange object (and with it
    ccxt's rate limiter and HTTP session), loads markets once, and closes them on ``close``.
    With ``enable_rate_limit`` and a ``rate_budget`` factory, the budget it makes replaces
    ccxt's throttle, keeping ccxt's per-endpoint costs (see ``rate_budget``).
    """

    def __init__(
        self,
        exchange_id: str,
        *,
        profile: ExchangeProfile | None = None,
        url_override: str | None = None,
        timeout_ms: int = 15_000,
        retry_attempts: int = 5,
        retry_max_wait_seconds: float = 8.0,
        enable_rate_limit: bool = True,
        calls_in_flight: int = DEFAULT_CALLS_IN_FLIGHT,
        clock: Clock = _system_clock,
        rate_budget: RateBudgetFactory | None = None,
    ) -> None:
        self._exchange_id = exchange_id
        self._profile = profile or PROFILES.get(exchange_id) or ExchangeProfile(ccxt_id=exchange_id)
        self._url_override = url_override
        self._timeout_ms = timeout_ms
        self._retry_attempts = retry_attempts
        self._retry_max_wait_seconds = retry_max_wait_seconds
        self._enable_rate_limit = enable_rate_limit
        self._clock = clock
        self._rate_budget_factory = rate_budget
        self.rate_budget: RateBudget | None = None
        """The budget pacing the exchange object's requests, once it exists (or None)."""
        self._exchange: Any = None
        self._markets_lock = asyncio.Lock()
        self._contracts_lock = asyncio.Lock()
        self._markets_loaded = False
        self._contracts_loaded = not self._profile.contract_market_types
        if calls_in_flight < 1:
            raise ValueError("calls_in_flight must be at least 1")
        self._in_flight = asyncio.Semaphore(calls_in_flight)

    def get_exchange_name(self) -> str:
        """The exchange id, e.g. ``cryptocom``."""
        return self._exchange_id

    def get_max_candles_per_call(self, timeframe: str) -> int:
        """The most candles one call returns."""
        return self._profile.max_per_call

    async def check_coin_availability(self, symbol: str) -> bool:
        """Whether the exchange lists ``symbol`` (a series symbol: its market); markets are
        loaded once and cached."""
        return await self._market(symbol) is not None

    async def check_coin_trading(self, symbol: str) -> bool:
        """Whether ``symbol``'s market is listed and not marked inactive (ccxt's ``active``)
        or expired."""
        market = await self._market(symbol)
        if market is None or market.get("active") is False:
            return False
        expiry = market.get("expiry")
        return expiry is None or expiry > self._clock()

    async def fetch_historical_data(
        self,
        symbol: str,
        timeframe: str,
        start: int,
        end: int,
        *,
        expect_candles: TimeRange | None = None,
    ) -> list[Candle]:
        """Exactly the closed candles in ``[start, end)``, ascending, one per timestamp.

        A call window wholly inside ``expect_candles`` that answers no candle is asked once
        more, and logged (``history.empty_window``) if the second answer is empty too.
        """
        exchange, timeframe_ms = await self._checked_series(symbol, timeframe, start, end)
        horizon = align_down(self._clock(), timeframe_ms)
        end = min(end, horizon, _candles_end(exchange, symbol, timeframe_ms))
        self._check_history_depth(start, end, horizon, timeframe, timeframe_ms)
        step = self._profile.max_per_call * timeframe_ms
        windows = [(first, min(first + step, end)) for first in range(start, end, step)]

        async def fetch(window_start: int, window_end: int) -> list[Candle]:
            candles = await self._fetch_call(exchange, symbol, timeframe, window_start, window_end)
            if candles or expect_candles is None:
                return candles
            if not expect_candles.start <= window_start < window_end <= expect_candles.end:
                return candles
            candles = await self._fetch_call(exchange, symbol, timeframe, window_start, window_end)
            if not candles:
                log_event(
                    logger,
                    "history.empty_window",
                    level=logging.WARNING,
                    exchange=self._exchange_id,
                    symbol=symbol,
                    timeframe=timeframe,
                    start_ms=window_start,
                    end_ms=window_end,
                    answers=2,
                )
            return candles

        # Windows overlap in flight; ccxt's rate limiter still spaces the requests out.
        tasks = [asyncio.ensure_future(fetch(*window)) for window in windows]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            # The first failure is the answer: stop the other calls (a TaskGroup would wrap
            # the typed error in an ExceptionGroup).
            for task in tasks:
                task.cancel()
            raise
        candles = {candle.timestamp: candle for result in results for candle in result}
        return [candles[timestamp] for timestamp in sorted(candles)]

    async def find_history_edge(
        self,
        symbol: str,
        timeframe: str,
        start: int,
        end: int,
        *,
        first: bool,
        deadline: float | None = None,
    ) -> EdgeWindow:
        """The call window holding the first (or last) closed candle in ``[start, end)``:
        by probes where the exchange answers wide windows, else by the coarse scan."""
        if not self._profile.wide_windows:
            return await super().find_history_edge(
                symbol, timeframe, start, end, first=first, deadline=deadline
            )
        exchange, timeframe_ms = await self._checked_series(symbol, timeframe, start, end)

        async def fetch(window_start: int, window_end: int) -> list[Candle]:
            return await self._fetch_call(exchange, symbol, timeframe, window_start, window_end)

        async def probe(window_start: int, window_end: int) -> int | None:
            rows = await self._fetch_rows(exchange, symbol, timeframe, window_start, window_end, 1)
            stamps = (int(row[0]) for row in rows if row and row[0] is not None)
            return next((t for t in stamps if window_start <= t < window_end), None)

        finder = HistoryEdgeFinder(
            timeframe_ms=timeframe_ms,
            call_span_ms=self._profile.max_per_call * timeframe_ms,
            fetch=fetch,
            probe=probe,
            deadline=deadline,
        )
        horizon = min(
            align_down(self._clock(), timeframe_ms), _candles_end(exchange, symbol, timeframe_ms)
        )
        return await finder.find(start, min(end, horizon), first=first)

    async def fetch_funding_window(self, symbol: str, start: int, end: int) -> FundingWindow:
        """The funding events of ``[start, end)`` from one call, and the part of the window
        they are complete for: all of it if the answer was not full, else from ``start`` to
        just after its last event (or from its first event to ``end``, for an exchange that
        fills an over-full answer from the window's end)."""
        if not 0 <= start < end:
            raise InvalidInputError(f"funding window [{start}, {end}) is empty")
        exchange = await self._contract(symbol)
        per_call = self._profile.funding_per_call
        if self._profile.funding_fill == "end":
            # Asked forwards in windows of at most a call's events at the shortest funding
            # interval, so a long history is read from its start page by page rather than
            # from its newest event back (pages empty until the walk reached the cursor).
            end = min(end, start + per_call * SHORTEST_FUNDING_INTERVAL_MS)
        async with self._in_flight:
            rows: list[dict[str, Any]] = await self._call(
                f"fetch_funding_rate_history {symbol} [{start}, {end}) limit {per_call}",
                exchange.fetch_funding_rate_history,
                symbol,
                start,
                per_call,
                {"until": end - 1},
            )
        by_time = {}
        for row in rows:
            event = _to_funding_rate(row)
            if event is not None and start <= event.timestamp < end:
                by_time[event.timestamp] = event
        events = [by_time[timestamp] for timestamp in sorted(by_time)]
        if len(rows) < per_call:
            return FundingWindow(events, TimeRange(start, end))
        if not events:
            raise ExchangeError(
                f"{self._exchange_id} answered a full funding page for {symbol} with no "
                f"event in [{start}, {end})"
            )
        if self._profile.funding_fill == "start":
            return FundingWindow(events, TimeRange(start, events[-1].timestamp + 1))
        return FundingWindow(events, TimeRange(events[0].timestamp, end))

    async def fetch_calendar_window(
        self, symbol: str, timeframe: str, start: int, end: int
    ) -> CandleWindow:
        """The ``timeframe`` candles (an offered calendar timeframe) opening in ``[start,
        end)``, as the exchange aligns them, from one call: the window is cut to two fewer
        of the shortest such candles than a call returns, so the answer is its whole
        whichever end the exchange fills from (an answer filling the call is refused). The
        forming candle is among them; nothing is asked from a dated future's expiry on."""
        span = calendar_span(timeframe)
        if span is None:
            raise unsupported_timeframe(
                timeframe, exchange=self._exchange_id, offered=self.offered_timeframes()
            )
        if not 0 <= start < end:
            raise InvalidInputError(f"window [{start}, {end}) is empty")
        exchange = await self._offered(symbol, timeframe, calendar=True)
        per_call = self._profile.max_per_call
        # Two slots to spare: an exchange may answer the candle holding ``start`` (opening
        # before it) or stamp a first candle at its listing, closer than the shortest span;
        # an answer filling the last slot too may have been cut short.
        end = min(end, start + (per_call - 2) * span.min_ms)
        expiry = (exchange.markets.get(split_series_symbol(symbol)[0]) or {}).get("expiry")
        if expiry is not None and start >= int(expiry):
            return CandleWindow([], TimeRange(start, end))
        depth = self._profile.history_depth
        if depth is not None:
            # The newest ``depth`` candles are kept, the forming one among them.
            earliest = self._clock() - (depth - 1) * span.min_ms
            if start < earliest:
                raise ExchangeHistoryUnavailableError(
                    f"{self._exchange_id} serves only its newest {depth} {timeframe} "
                    f"candles, from about {earliest} (epoch ms) on; asked from {start}",
                    earliest_available=earliest,
                )
        opens = -(-(end - start) // span.min_ms)
        limit = opens + 2
        rows = await self._fetch_rows(exchange, symbol, timeframe, start, end, limit)
        candles = [c for c in map(_to_candle, rows) if c is not None and c.timestamp < end]
        if len(candles) >= limit:
            # More candles than the window can hold: the answer may be cut short, and
            # nothing of it is recorded as fetched.
            raise ExchangeError(
                f"{self._exchange_id} answered {len(candles)} {timeframe} candles of {symbol} "
                f"for [{start}, {end}), a window that holds at most {opens} (and one before)"
            )
        by_time = {c.timestamp: c for c in candles if start <= c.timestamp}
        return CandleWindow([by_time[t] for t in sorted(by_time)], TimeRange(start, end))

    async def _contract(self, symbol: str) -> Any:
        """The loaded exchange, if it has funding history in ccxt and lists ``symbol`` as a
        perpetual swap."""
        exchange = self._exchange or self._create_exchange()
        if not exchange.has.get("fetchFundingRateHistory"):
            raise FundingHistoryUnavailableError(
                f"{self._exchange_id} serves no funding-rate history"
            )
        exchange = await self._loaded_exchange(symbol)
        market = exchange.markets.get(symbol)
        if market is None:
            raise UnknownSymbolError.not_listed(self._exchange_id, symbol)
        if not market.get("swap"):
            raise FundingHistoryUnavailableError(
                f"{symbol!r} is a {market.get('type')} market on {self._exchange_id}: only "
                "perpetual swaps (such as BTC/USDT:USDT) have funding rates"
            )
        return exchange

    async def close(self) -> None:
        """Close the ccxt exchange's HTTP session."""
        if self._exchange is not None:
            exchange, self._exchange = self._exchange, None
            self._markets_loaded = False
            self._contracts_loaded = not self._profile.contract_market_types
            await exchange.close()

    def _check_history_depth(
        self, start: int, end: int, horizon: int, timeframe: str, timeframe_ms: int
    ) -> None:
        depth = self._profile.history_depth
        if depth is None or start >= end:
            return
        # The exchange keeps its newest ``depth`` candles, the forming one among them.
        earliest = horizon - (depth - 1) * timeframe_ms
        if start < earliest:
            raise ExchangeHistoryUnavailableError(
                f"{self._exchange_id} serves only its newest {depth} {timeframe} candles, "
                f"from {earliest} (epoch ms) on; asked from {start}",
                earliest_available=earliest,
            )

    async def check_series(self, symbol: str, timeframe: str, *, start: int | None = None) -> None:
        """Return if the exchange lists ``symbol``, offers ``timeframe`` and (with ``start``)
        serves history from ``start``; raise the error that says which not."""
        await self._offered(symbol, timeframe)
        if start is not None:
            timeframe_ms = timeframe_to_ms(timeframe)
            horizon = align_down(self._clock(), timeframe_ms)
            start = align_down(start, timeframe_ms)
            self._check_history_depth(start, horizon, horizon, timeframe, timeframe_ms)

    async def _checked_series(
        self, symbol: str, timeframe: str, start: int, end: int
    ) -> tuple[Any, int]:
        """The loaded exchange and the timeframe's length, once the request is checked."""
        timeframe_ms = self.check_timeframe(timeframe)
        if start % timeframe_ms or end % timeframe_ms or not 0 <= start < end:
            raise InvalidInputError(
                f"window [{start}, {end}) is not aligned to {timeframe} or is empty"
            )
        return await self._offered(symbol, timeframe), timeframe_ms

    def offered_timeframes(self) -> list[str]:
        """ccxt's timeframes of the exchange, of its calendar ones only those its profile
        declares (imports ccxt, but needs no request)."""
        exchange = self._exchange or self._create_exchange()
        declared = self._profile.calendar_timeframes
        return [
            name
            for name in exchange.timeframes or {}
            if calendar_span(name) is None or name in declared
        ]

    async def _offered(self, symbol: str, timeframe: str, *, calendar: bool = False) -> Any:
        """The loaded exchange, if it offers ``timeframe`` candles, the service supports
        them on its fixed grids (or, if ``calendar``, as the exchange's own calendar
        candles), it lists ``symbol``'s market and has its price type's candles."""
        market_symbol, price = split_series_symbol(symbol)
        exchange = await self._loaded_exchange(market_symbol)
        offered = self.offered_timeframes()
        served = timeframe in TIMEFRAME_MS or (calendar and calendar_span(timeframe) is not None)
        if timeframe not in offered or not served:
            raise unsupported_timeframe(timeframe, exchange=self._exchange_id, offered=offered)
        market = exchange.markets.get(market_symbol)
        if market is None:
            raise UnknownSymbolError.not_listed(self._exchange_id, market_symbol)
        if price != "trade":
            self._check_price(exchange, market, price)
        return exchange

    def _check_price(self, exchange: Any, market: Mapping[str, Any], price: PriceType) -> None:
        """UnsupportedPriceTypeError unless ``market`` has ``price`` candles on the exchange."""
        offered = ["trade"] + [
            name for name, (_, has) in _CCXT_PRICE.items() if exchange.has.get(has) is True
        ]
        if price not in offered:
            raise UnsupportedPriceTypeError(
                f"{self._exchange_id} offers no {price} candles; its price types are "
                f"{', '.join(offered)} (of {', '.join(PRICE_TYPES)})"
            )
        if not market.get("contract"):
            raise UnsupportedPriceTypeError(
                f"{market['symbol']} is a spot market: only its trade candles exist; {price} "
                f"candles are a swap's or a future's (such as {market['symbol']}:"
                f"{market.get('quote') or 'USDT'})"
            )

    async def _market(self, symbol: str) -> Mapping[str, Any] | None:
        """The ccxt market of a series symbol, or None if the exchange does not list it."""
        market_symbol, _ = split_series_symbol(symbol)
        exchange = await self._loaded_exchange(market_symbol)
        market: Mapping[str, Any] | None = exchange.markets.get(market_symbol)
        return market

    async def _fetch_call(
        self, exchange: Any, symbol: str, timeframe: str, start: int, end: int
    ) -> list[Candle]:
        """One call for the whole window ``[start, end)``: its candles, parsed and clipped."""
        limit = -(-(end - start) // timeframe_to_ms(timeframe))
        rows = await self._fetch_rows(exchange, symbol, timeframe, start, end, limit)
        parsed = (_to_candle(row) for row in rows)
        return [c for c in parsed if c is not None and start <= c.timestamp < end]

    async def _fetch_rows(
        self, exchange: Any, symbol: str, timeframe: str, start: int, end: int, limit: int
    ) -> list[list[Any]]:
        """ccxt's rows for at most ``limit`` candles of ``[start, end)``, in one call."""
        market_symbol, price = split_series_symbol(symbol)
        params = self._profile.window_params(start, end)
        if price != "trade":
            params["price"] = _CCXT_PRICE[price][0]
        async with self._in_flight:
            rows: list[list[Any]] = await self._call(
                f"fetch_ohlcv {symbol} {timeframe} [{start}, {end}) limit {limit}",
                exchange.fetch_ohlcv,
                market_symbol,
                timeframe,
                start,
                limit,
                params,
            )
        return rows

    async def _loaded_exchange(self, symbol: str | None = None) -> Any:
        """The exchange with its markets loaded: its contracts' too if ``symbol`` (a ccxt
        symbol) names one."""
        async with self._markets_lock:
            exchange = self._exchange or self._create_exchange()
            if not self._markets_loaded:
                await self._call("load_markets", exchange.load_markets)
                self._markets_loaded = True
                _freeze_long_lived_objects()
        if symbol is not None and ":" in symbol and not self._contracts_loaded:
            await self._load_contracts(exchange)
        return exchange

    async def _load_contracts(self, exchange: Any) -> None:
        """Add the profile's contract markets to the loaded ones, once. Requests for loaded
        markets do not wait for it, and a failed load leaves the markets as they were (the
        next request naming a contract tries again)."""
        async with self._contracts_lock:
            if self._contracts_loaded or exchange is not self._exchange:
                return
            loading = exchange.options["fetchMarkets"]
            types = list(self._profile.contract_market_types)
            exchange.options["fetchMarkets"] = {**loading, "types": types}
            try:
                contracts = await self._call(
                    "fetch_markets " + ", ".join(types), exchange.fetch_markets
                )
            finally:
                exchange.options["fetchMarkets"] = loading
            exchange.set_markets([*exchange.markets.values(), *contracts])
            self._contracts_loaded = True

    def _create_exchange(self) -> Any:
        ccxt_async = import_ccxt_async()

        exchange_class = getattr(ccxt_async, self._profile.ccxt_id)
        exchange = exchange_class(
            {
                "enableRateLimit": self._enable_rate_limit,
                "timeout": self._timeout_ms,
                "options": dict(self._profile.options),
            }
        )
        if self._url_override is not None:
            exchange.urls["api"] = rewrite_origin(exchange.urls["api"], self._url_override)
        for code in self._profile.transient_error_codes:
            exchange.exceptions["exact"][code] = ccxt_async.ExchangeNotAvailable
        exchange.handle_errors = _json_answers_only(
            exchange, envelope_by_status=self._profile.errors_without_envelope_by_status
        )
        exchange.handle_http_status_code = _every_error_status_raises(exchange)
        if self._enable_rate_limit and self._rate_budget_factory is not None:
            if self.rate_budget is None:  # one budget for the client, across exchange objects
                self.rate_budget = self._rate_budget_factory(1000 / exchange.rateLimit)
            # ccxt's fetch2 awaits throttle(cost) before every request, with its own costs.
            exchange.throttle = self.rate_budget.acquire
        self._exchange = exchange
        return exchange

    async def _call(self, what: str, call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run one exchange call with retries on transient faults; map ccxt's errors."""
        ccxt_async = import_ccxt_async()

        def transient(exc: BaseException) -> bool:
            return isinstance(exc, ccxt_async.NetworkError)

        def log_retry(state: Any) -> None:
            logger.warning(
                "%s %s failed (attempt %d): %s; retrying",
                self._exchange_id,
                what,
                state.attempt_number,
                state.outcome.exception() if state.outcome else "",
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry_attempts),
            wait=wait_exponential_jitter(
                multiplier=0.25,
                max=self._retry_max_wait_seconds,
                jitter=min(1.0, self._retry_max_wait_seconds),
            ),
            retry=retry_if_exception(transient),
            before_sleep=log_retry,
            reraise=False,
        )
        try:
            return await retrying(call, *args)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise ExchangeUnavailableError(
                f"{self._exchange_id} {what} failed {self._retry_attempts} times: "
                f"{type(last).__name__}: {_short(last)}"
            ) from last
        except ccxt_async.BadSymbol as exc:
            raise UnknownSymbolError(f"{self._exchange_id}: {_without_urls(exc)}") from exc
        except ccxt_async.BadRequest as exc:
            raise InvalidInputError(
                f"{self._exchange_id} rejected {what}: {_without_urls(exc)}"
            ) from exc
        except ccxt_async.BaseError as exc:
            raise ExchangeError(
                f"{self._exchange_id} {what} failed: {type(exc).__name__}: {_short(exc)}"
            ) from exc


_TRANSIENT_CLIENT_ERRORS = frozenset({421, 425, 499})
"""4xx statuses that ccxt does not map and that a retry may get past."""


def _every_error_status_raises(exchange: Any) -> Callable[..., None]:
    """``exchange``'s ccxt ``handle_http_status_code`` hook, raising for every HTTP status
    of 400 or more: ccxt's own error where it maps the status, otherwise
    ``ExchangeNotAvailable`` for a 5xx (a CDN's 524, say) or a transient 4xx (421, 425, a
    load balancer's 499), and ``ExchangeError`` for any other 4xx.

    ccxt maps only some statuses; for the others it hands the body back as if it were the
    answer, and a gateway's HTML page then parses as "no candles", which would be stored
    as a fetched, empty range.
    """
    ccxt_async = import_ccxt_async()

    handle_http_status_code = exchange.handle_http_status_code

    def handle(code: int, reason: str, url: str, method: str, body: str) -> None:
        handle_http_status_code(code, reason, url, method, body)
        if code >= 400:
            transient = code >= 500 or code in _TRANSIENT_CLIENT_ERRORS
            error = ccxt_async.ExchangeNotAvailable if transient else ccxt_async.ExchangeError
            raise error(f"{exchange.id} {method} {url} {code} {reason} {body[:200]}")

    return handle


def _json_answers_only(exchange: Any, *, envelope_by_status: bool) -> Callable[..., Any]:
    """``exchange``'s ccxt ``handle_errors`` hook, refusing a successful answer that is not
    a JSON object or array (a proxy's or captive portal's page, an empty body, a JSON scalar),
    which ccxt would parse as no candles: ``ExchangeNotAvailable``, retried. With
    ``envelope_by_status``, an error answer without the exchange's envelope (an object with a
    ``code``) is left to the HTTP status hook, called next."""
    ccxt_async = import_ccxt_async()

    handle_errors = exchange.handle_errors

    def handle(code: int, reason: str, url: str, method: str, headers: Any, body: str,
               response: Any, *request: Any) -> Any:  # fmt: skip
        if code < 400 and response is None:
            raise ccxt_async.ExchangeNotAvailable(
                f"{exchange.id} {method} {url} {code} {reason}: not a JSON answer: {body[:200]}"
            )
        enveloped = isinstance(response, dict) and "code" in response
        if envelope_by_status and code >= 400 and not enveloped:
            return None
        return handle_errors(code, reason, url, method, headers, body, response, *request)

    return handle


def _freeze_long_lived_objects() -> None:
    """Exempt what exists now (ccxt's modules, the exchange object, its markets) from the
    cyclic collector's full collections.

    ccxt's modules leave many tracked objects (functions, API entries, dicts; some 200,000
    when every exchange is imported) that live as long as the process. A full collection
    scans all of them (about 65 ms with every exchange), and a cold fill allocates enough
    candles to trigger one every page or two, stalling the exchange calls in flight. Frozen
    objects are still freed by reference counting; collecting first keeps garbage from being
    frozen with them. Called once per exchange object, after its markets are loaded.
    """
    gc.collect()
    gc.freeze()


def _candles_end(exchange: Any, symbol: str, timeframe_ms: int) -> int:
    """Where a series symbol's candles end for good: after the one holding its market's
    expiry (a dated future); far in the future otherwise."""
    market = exchange.markets.get(split_series_symbol(symbol)[0]) or {}
    expiry = market.get("expiry")
    return align_up(int(expiry), timeframe_ms) if expiry else 2**62


def _short(exc: BaseException | None, limit: int = 300) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)


def _without_urls(exc: BaseException) -> str:
    """``_short(exc)`` with the URLs ccxt puts in its messages left out: for an error the
    caller reads (a 4xx), which must not show where the service reaches the exchange."""
    return _URL.sub("<exchange API>", _short(exc))


def _to_funding_rate(row: dict[str, Any]) -> FundingRate | None:
    """ccxt's funding rate history structure; None if its time or rate is missing."""
    timestamp, rate = row.get("timestamp"), row.get("fundingRate")
    if timestamp is None or rate is None:
        logger.warning("dropping a funding event without time or rate: %r", row.get("info"))
        return None
    return FundingRate(int(timestamp), float(rate))


def _to_candle(row: list[Any]) -> Candle | None:
    """ccxt's ``[timestamp, open, high, low, close, volume]``; None if a price is missing."""
    timestamp, open_, high, low, close, volume = row[:6]
    if None in (timestamp, open_, high, low, close):
        logger.warning("dropping a candle with a missing price: %r", row)
        return None
    return Candle(
        int(timestamp), float(open_), float(high), float(low), float(close), float(volume or 0)
    )
