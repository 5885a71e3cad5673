"""Exchange connector interfaces: one plugin per exchange, and the microkernel over them."""

from __future__ import annotations

from abc import ABC, abstractmethod

from cbtrade.models import Candle


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

    @abstractmethod
    async def fetch_historical_data(
        self, symbol: str, timeframe: str, start: int, end: int
    ) -> list[Candle]:
        """Exactly the closed candles the exchange has in ``[start, end)``, ascending, unique.

        Raises UnknownSymbolError for a symbol the exchange does not list (no candle call),
        ExchangeHistoryUnavailableError for a range the exchange's API cannot serve,
        ExchangeUnavailableError when retries run out, ExchangeError for other failures.
        """

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
        self, exchange_name: str, symbol: str, timeframe: str, start: int, end: int
    ) -> list[Candle]:
        """Delegate to the exchange's plugin."""

    @abstractmethod
    async def close(self) -> None:
        """Close every plugin that was opened."""
