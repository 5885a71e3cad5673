"""The history interface the API and the timer use."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

from cbtrade.candle_table import CandleTable


class OhlcvPage(NamedTuple):
    """One page of a range: contiguous, gap-filled, at most ``limit`` candles."""

    exchange: str
    symbol: str
    timeframe: str
    candles: CandleTable
    continuation_token: str | None
    """Token for the rest of the range, or None on the last page."""
    sealed: bool = False
    """Read wholly from sealed objects: the same query answers the same page until a repair."""
    derived_from: str | None = None
    """The base timeframe the candles were aggregated from; None when fetched natively."""


class IHistoricalDataManager(ABC):
    """Serves gap-filled history page by page, and the newest stored timestamp."""

    @abstractmethod
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
        """The first page of a query, or the next one for ``continuation_token``, which
        keeps the query's ``limit``; ``default_limit`` when the query asked for none.
        ``price`` is the price type asked beside a token without a symbol (it must be the
        token's)."""

    @abstractmethod
    async def get_most_recent_timestamp(
        self, exchange_name: str, coin_symbol: str, timeframe: str
    ) -> int | None:
        """Epoch ms of the newest stored candle of the series; None when nothing is stored
        for a series the exchange serves (a symbol it does not list, or a timeframe it does
        not offer, raises)."""
