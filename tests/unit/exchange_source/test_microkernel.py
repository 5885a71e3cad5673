"""PluginRegistry and DataSourceConnectorImpl (plan 2.2, 2.3, 6.3), with mock plugins."""

from __future__ import annotations

from unittest.mock import AsyncMock, MagicMock

import pytest

from cbtrade.config import Settings, load_settings
from cbtrade.errors import InvalidPathComponentError, UnknownExchangeError
from cbtrade.exchange_source import microkernel
from cbtrade.exchange_source.interfaces import IExchangeAPIClient
from cbtrade.exchange_source.microkernel import DataSourceConnectorImpl, PluginRegistry
from cbtrade.exchange_source.plugins.ccxt_exchange import CCXTExchangeClient
from cbtrade.models import Candle
from tests.fixtures.imports import imports_module


def mock_plugin(name: str) -> MagicMock:
    plugin = MagicMock(spec=IExchangeAPIClient)
    plugin.get_exchange_name.return_value = name
    plugin.check_coin_availability = AsyncMock(return_value=True)
    plugin.fetch_historical_data = AsyncMock(return_value=[Candle(0, 1, 2, 0.5, 1.5, 3)])
    plugin.close = AsyncMock()
    return plugin


def test_registry_adds_and_returns_plugins_by_name() -> None:
    registry = PluginRegistry()
    plugin = mock_plugin("alpha")
    registry.register(plugin)
    assert registry.get("alpha") is plugin
    assert "alpha" in registry
    assert registry.list_exchanges() == ["alpha"]


def test_registry_missing_plugin_is_a_typed_error() -> None:
    with pytest.raises(UnknownExchangeError, match="beta"):
        PluginRegistry().get("beta")


@pytest.fixture
def settings() -> Settings:
    return load_settings(exchange_url_overrides={"cryptocom": "http://127.0.0.1:9"})


def test_builtins_are_listed_and_created_once(settings: Settings) -> None:
    connector = DataSourceConnectorImpl(settings)
    assert {"cryptocom", "binance", "kraken", "coinbase"} <= set(connector.list_exchanges())
    client = connector.get_client("cryptocom")
    assert isinstance(client, CCXTExchangeClient)
    assert client.get_exchange_name() == "cryptocom"
    assert connector.get_client("cryptocom") is client


def test_the_exchange_settings_reach_the_ccxt_plugins(settings: Settings) -> None:
    tuned = settings.model_copy(update={"exchange_calls_in_flight": 3, "exchange_timeout_ms": 900})
    client = DataSourceConnectorImpl(tuned).get_client("kraken")
    assert isinstance(client, CCXTExchangeClient)
    assert (client._in_flight._value, client._timeout_ms) == (3, 900)


def test_get_client_rejects_unknown_and_malformed_ids(settings: Settings) -> None:
    connector = DataSourceConnectorImpl(settings)
    with pytest.raises(UnknownExchangeError, match="nowhere"):
        connector.get_client("nowhere")
    for bad in ("../x", "Binance", "", "a" * 33, "bin ance"):
        with pytest.raises(InvalidPathComponentError):
            connector.get_client(bad)


def test_any_other_ccxt_exchange_gets_a_generic_plugin(settings: Settings) -> None:
    client = DataSourceConnectorImpl(settings).get_client("okx")
    assert isinstance(client, CCXTExchangeClient)
    assert client.get_max_candles_per_call("5m") == 300


async def test_calls_are_delegated_to_the_exchanges_plugin(settings: Settings) -> None:
    plugin = mock_plugin("alpha")
    connector = DataSourceConnectorImpl(settings, factories={"alpha": lambda s: plugin})
    assert await connector.check_coin_availability("alpha", "BTC/USD") is True
    plugin.check_coin_availability.assert_awaited_once_with("BTC/USD")
    candles = await connector.fetch_historical_data("alpha", "BTC/USD", "5m", 0, 300_000)
    assert candles == [Candle(0, 1, 2, 0.5, 1.5, 3)]
    plugin.fetch_historical_data.assert_awaited_once_with(
        "BTC/USD", "5m", 0, 300_000, expect_candles=None
    )
    await connector.close()
    plugin.close.assert_awaited_once()


def test_entry_point_plugins_are_discovered(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = mock_plugin("myex")
    entry_point = MagicMock()
    entry_point.name = "myex"
    entry_point.load.return_value = lambda s: plugin
    bad = MagicMock()
    bad.name = "../evil"
    monkeypatch.setattr(
        microkernel,
        "entry_points",
        lambda group: [entry_point, bad] if group == "cbtrade.exchanges" else [],
    )
    connector = DataSourceConnectorImpl(settings)
    assert "myex" in connector.list_exchanges()
    assert "../evil" not in connector.list_exchanges()
    assert connector.get_client("myex") is plugin


def test_importing_the_connector_does_not_import_ccxt() -> None:
    code = (
        "import cbtrade.exchange_source.microkernel as m\n"
        "from cbtrade.config import load_settings\n"
        "m.create_data_source_connector(load_settings()).get_client('binance')"
    )
    assert not imports_module(code, "ccxt")
