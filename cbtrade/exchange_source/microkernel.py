"""The exchange microkernel: PluginRegistry and DataSourceConnectorImpl.

Plugins come from three places: the built-in ccxt profiles (Crypto.com, Binance, Kraken,
Coinbase), the ``cbtrade.exchanges`` entry-point group (each entry point loads a factory
``(settings) -> IExchangeAPIClient``), and, on first use, any other ccxt exchange id. Each
plugin is created once per process, on first use, and reused; nothing here imports ccxt.
The ccxt plugins pace their requests with the rate budget the settings choose (``rate_budget``):
per process, or shared through the storage by every instance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import entry_points

from cbtrade.config import Settings
from cbtrade.errors import InvalidPathComponentError, UnknownExchangeError
from cbtrade.exchange_source.ccxt_import import import_ccxt_async
from cbtrade.exchange_source.interfaces import IDataSourceConnector, IExchangeAPIClient
from cbtrade.exchange_source.plugins.ccxt_exchange import PROFILES, CCXTExchangeClient
from cbtrade.exchange_source.rate_budget import DocumentStore, RateBudget, create_rate_budget
from cbtrade.models import EXCHANGE_ID, Candle, TimeRange

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cbtrade.exchanges"

PluginFactory = Callable[[Settings], IExchangeAPIClient]


class PluginRegistry:
    """Exchange plugins by exchange id."""

    def __init__(self) -> None:
        self._plugins: dict[str, IExchangeAPIClient] = {}

    def register(self, plugin: IExchangeAPIClient) -> None:
        """Add ``plugin`` under its exchange id, replacing any earlier one."""
        self._plugins[plugin.get_exchange_name()] = plugin

    def get(self, exchange_name: str) -> IExchangeAPIClient:
        """The plugin for ``exchange_name``; UnknownExchangeError if there is none."""
        try:
            return self._plugins[exchange_name]
        except KeyError:
            raise UnknownExchangeError(f"no plugin for exchange {exchange_name!r}") from None

    def __contains__(self, exchange_name: object) -> bool:
        return exchange_name in self._plugins

    def list_exchanges(self) -> list[str]:
        """Registered exchange ids, sorted."""
        return sorted(self._plugins)

    def plugins(self) -> list[IExchangeAPIClient]:
        """Every registered plugin."""
        return list(self._plugins.values())


def ccxt_plugin_factory(exchange_id: str, *, storage: DocumentStore | None = None) -> PluginFactory:
    """A factory for the ccxt plugin of ``exchange_id``, configured from settings; ``storage``
    holds the shared rate budget's document when the settings ask for one."""

    def create(settings: Settings) -> IExchangeAPIClient:
        def rate_budget(default_rate: float) -> RateBudget:
            return create_rate_budget(
                settings, exchange_id, default_rate=default_rate, storage=storage
            )

        return CCXTExchangeClient(
            exchange_id,
            url_override=settings.exchange_url_overrides.get(exchange_id),
            timeout_ms=settings.exchange_timeout_ms,
            retry_attempts=settings.exchange_retry_attempts,
            retry_max_wait_seconds=settings.exchange_retry_max_wait_seconds,
            calls_in_flight=settings.exchange_calls_in_flight,
            rate_budget=rate_budget,
        )

    return create


def discover_plugin_factories(*, storage: DocumentStore | None = None) -> dict[str, PluginFactory]:
    """The built-in factories plus those of the ``cbtrade.exchanges`` entry points."""
    factories: dict[str, PluginFactory] = {
        exchange_id: ccxt_plugin_factory(exchange_id, storage=storage) for exchange_id in PROFILES
    }
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if not EXCHANGE_ID.match(entry_point.name):
            logger.warning("ignoring exchange plugin with a bad id: %r", entry_point.name)
            continue
        factories[entry_point.name] = entry_point.load()
    return factories


class DataSourceConnectorImpl(IDataSourceConnector):
    """Routes each call to the plugin of its exchange, creating plugins on first use.

    ``storage`` holds the shared rate budgets (``CBTRADE_RATE_BUDGET_SCOPE=shared``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        factories: dict[str, PluginFactory] | None = None,
        registry: PluginRegistry | None = None,
        storage: DocumentStore | None = None,
    ) -> None:
        if settings.rate_budget_scope == "shared" and storage is None:
            raise ValueError("CBTRADE_RATE_BUDGET_SCOPE=shared needs the storage")
        self._settings = settings
        self._storage = storage
        self._factories = (
            discover_plugin_factories(storage=storage) if factories is None else factories
        )
        self._registry = registry or PluginRegistry()

    def list_exchanges(self) -> list[str]:
        """Exchange ids with a plugin: built-in, discovered or registered."""
        return sorted(set(self._factories) | set(self._registry.list_exchanges()))

    def get_client(self, exchange_name: str) -> IExchangeAPIClient:
        """The plugin for ``exchange_name``, created on first use."""
        if exchange_name in self._registry:
            return self._registry.get(exchange_name)
        if not isinstance(exchange_name, str) or not EXCHANGE_ID.match(exchange_name):
            raise InvalidPathComponentError(
                f"exchange {exchange_name!r} is not an exchange id ([a-z0-9], 1-32 characters)"
            )
        factory = self._factories.get(exchange_name)
        if factory is None:
            if not _is_ccxt_exchange(exchange_name):
                raise UnknownExchangeError(f"no plugin for exchange {exchange_name!r}")
            factory = ccxt_plugin_factory(exchange_name, storage=self._storage)
        plugin = factory(self._settings)
        self._registry.register(plugin)
        return plugin

    async def check_coin_availability(self, exchange_name: str, symbol: str) -> bool:
        """Whether the exchange lists ``symbol``."""
        return await self.get_client(exchange_name).check_coin_availability(symbol)

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
        """The exchange's closed candles in ``[start, end)``."""
        return await self.get_client(exchange_name).fetch_historical_data(
            symbol, timeframe, start, end, expect_candles=expect_candles
        )

    async def close(self) -> None:
        """Close every plugin that was created."""
        for plugin in self._registry.plugins():
            try:
                await plugin.close()
            except Exception:
                logger.exception("closing the %s plugin failed", plugin.get_exchange_name())


def _is_ccxt_exchange(exchange_id: str) -> bool:
    ccxt_async = import_ccxt_async()

    return exchange_id in ccxt_async.exchanges


def create_data_source_connector(
    settings: Settings, *, storage: DocumentStore | None = None
) -> DataSourceConnectorImpl:
    """The connector with every discovered plugin, configured from settings; ``storage``
    holds the shared rate budgets (required when the settings share them)."""
    return DataSourceConnectorImpl(settings, storage=storage)
