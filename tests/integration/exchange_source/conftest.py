"""Fixtures of the exchange plugins' tests against the exchange simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from cbtrade.exchange_source.plugins.ccxt_exchange import CCXTExchangeClient
from tests.exchange_simulator import ExchangeSimulator

PluginFactory = Callable[..., CCXTExchangeClient]


@pytest.fixture
async def make_plugin(simulator: ExchangeSimulator) -> AsyncIterator[PluginFactory]:
    """Makes plugins reading from the simulator (short retries, no rate limit); closes them."""
    plugins: list[CCXTExchangeClient] = []

    def make(exchange_id: str, **options: object) -> CCXTExchangeClient:
        options.setdefault("retry_attempts", 4)
        options.setdefault("retry_max_wait_seconds", 0.05)
        options.setdefault("enable_rate_limit", False)
        plugin = CCXTExchangeClient(exchange_id, url_override=simulator.origin, **options)  # type: ignore[arg-type]
        plugins.append(plugin)
        return plugin

    yield make
    for plugin in plugins:
        await plugin.close()
