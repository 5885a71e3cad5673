"""Exchange connector interfaces: one plugin per exchange, and the microkernel over them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from cbtrade.errors import FundingHistoryUnavailableError, UnknownSymbolError
from cbtrade.exchange_source.history_edges import CoarseSeries, EdgeWindow, HistoryEdgeFinder
from cbtrade.models import Candle, FundingRate, TimeRange
from cbtrade.timeframes import TIMEFRAME_MS, timeframe_to_ms, unsupported_timeframe


class FundingWindow(NamedTuple):
    """What one funding-history call answered for a window: its events, ascending, and the
    part of the window they are the whole of."""

    events: list[FundingRate]
    covered: TimeRange
    """Every funding event in this range is in ``events``: the asked window when the answer
    was not full, else the part of it the exchange filled (from the window's start or from
    its end)."""


class CandleWindow(NamedTuple):
    """What one call answered for a window of an exchange's own calendar candles."""

    candles: list[Candle]
    """The candles opening in ``covered``, ascending, the forming one included."""
    covered: TimeRange
    """Every candle opening in this range (from the asked window's start) is in
    ``candles``."""


class IExchangeAPIClient(ABC):
    """A plugin that reads candles from one exchange."""

    @abstractmethod
    def get_exchange_name(self) -> str:
        """The exchange id (ccxt id, ``[a-z0-9]+``), e.g. ``cryptocom``."""

    @abstractmethod
    def get_max_candles_per_call(self, timeframe: str) -> int:
        """The most candles one exchange call returns for ``timeframe``.

        Gap-filling aligns its fetch windows to this so exchange calls stay minimal.
        """

    @abstractmethod
    async def check_coin_availability(self, symbol: str) -> bool:
        """Whether the exchange lists ``symbol`` (ccxt unified); markets are cached."""

    async def check_coin_trading(self, symbol: str) -> bool:
        """Whether ``symbol`` is listed and still trades (a market the exchange keeps listed
        but marks inactive has no new candles). By default: whether it is listed."""
        return await self.check_coin_availability(symbol)

    def offered_timeframes(self) -> list[str] | None:
        """The timeframes the exchange offers candles of (its own names, the service's or
        not), known without a request; None when the plugin cannot tell."""
        return None

    def check_timeframe(self, timeframe: str) -> int:
        """The length of ``timeframe`` in ms if the service supports it; otherwise
        InvalidTimeframeError naming those it serves for this exchange. No I/O for a
        supported timeframe (whether the exchange offers it is checked with its markets)."""
        if isinstance(timeframe, str) and timeframe in TIMEFRAME_MS:
            return TIMEFRAME_MS[timeframe]
        raise unsupported_timeframe(
            timeframe, exchange=self.get_exchange_name(), offered=self.offered_timeframes()
        )

    async def check_series(self, symbol: str, timeframe: str, *, start: int | None = None) -> None:
        """Return if the exchange can serve the series (from ``start``, if given); raise
        UnknownSymbolError, InvalidTimeframeError or ExchangeHistoryUnavailableError saying
        why not. By default: whether the symbol is listed."""
        self.check_timeframe(timeframe)
        if not await self.check_coin_availability(symbol):
            raise UnknownSymbolError.not_listed(self.get_exchange_name(), symbol)

    @abstractmethod
    async def fetch_historical_data(
        self,
        symbol: str,
        timeframe: str,
        start: int,
        end: int,
        *,
        expect_candles: TimeRange | None = None,
    ) -> list[Candle]:
        """Exactly the closed candles the exchange has in ``[start, end)``, ascending, unique.

        A call window wholly inside ``expect_candles`` (the series' known life) that answers
        no candle is asked once more before the answer is believed.

        Raises UnknownSymbolError for a symbol the exchange does not list (no candle call),
        ExchangeHistoryUnavailableError for a range the exchange's API cannot serve,
        ExchangeUnavailableError when retries run out, ExchangeError for other failures.
        """

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
        """The call window holding the first (``first=True``) or the last closed candle in
        ``[start, end)``, with its candles, found with few calls.

        By default a coarse scan over daily candles (see
        :mod:`~cbtrade.exchange_source.history_edges`); plugins whose exchange answers wide
        windows do better with probes.
        """
        day_ms = timeframe_to_ms("1d")
        per_call = self.get_max_candles_per_call(timeframe)

        def fetch_of(series_timeframe: str) -> Callable[[int, int], Awaitable[list[Candle]]]:
            async def fetch(window_start: int, window_end: int) -> list[Candle]:
                return await self.fetch_historical_data(
                    symbol, series_timeframe, window_start, window_end
                )

            return fetch

        finder = HistoryEdgeFinder(
            timeframe_ms=timeframe_to_ms(timeframe),
            call_span_ms=per_call * timeframe_to_ms(timeframe),
            fetch=fetch_of(timeframe),
            probe=None,
            coarse=CoarseSeries(
                day_ms, self.get_max_candles_per_call("1d") * day_ms, fetch_of("1d")
            ),
            deadline=deadline,
        )
        return await finder.find(start, end, first=first)

    async def fetch_calendar_window(
        self, symbol: str, timeframe: str, start: int, end: int
    ) -> CandleWindow:
        """The exchange's own ``timeframe`` candles (a calendar timeframe it offers, see
        :mod:`~cbtrade.calendar_timeframes`) opening in ``[start, end)``, as the exchange
        aligns them, from one call, and the part of the window they are the whole of.

        Raises the errors of :meth:`fetch_historical_data`. By default: the plugin serves
        none."""
        raise unsupported_timeframe(
            timeframe, exchange=self.get_exchange_name(), offered=self.offered_timeframes()
        )

    async def fetch_funding_window(self, symbol: str, start: int, end: int) -> FundingWindow:
        """The funding events of the perpetual contract ``symbol`` in ``[start, end)`` from
        one exchange call, and the part of the window they are complete for.

        Raises UnknownSymbolError for a symbol the exchange does not list,
        FundingHistoryUnavailableError for one that is not a contract or an exchange with no
        funding history, and the exchange errors of :meth:`fetch_historical_data`. By
        default: the exchange has none."""
        raise FundingHistoryUnavailableError(
            f"{self.get_exchange_name()} serves no funding-rate history"
        )

    @abstractmethod
    async def close(self) -> None:
        """Close the exchange's HTTP session."""


class IDataSourceConnector(ABC):
    """The microkernel: routes calls to the plugin registered for an exchange."""

    @abstractmethod
    def list_exchanges(self) -> list[str]:
        """Exchange ids that have a plugin, sorted."""

    @abstractmethod
    def get_client(self, exchange_name: str) -> IExchangeAPIClient:
        """The plugin for ``exchange_name``; raises UnknownExchangeError."""

    @abstractmethod
    async def check_coin_availability(self, exchange_name: str, symbol: str) -> bool:
        """Delegate to the exchange's plugin."""

    @abstractmethod
    async def fetch_historical_data(
        self,
        exchange_name: str,
        symbol: str,
        timeframe: str,
        start: int,
        end: int,
        *,
        expect_candles: TimeRange | None = None,
    ) -> list[Candle]:
        """Delegate to the exchange's plugin."""

    @abstractmethod
    async def close(self) -> None:
        """Close every plugin that was opened."""
