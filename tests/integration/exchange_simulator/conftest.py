"""Real ccxt (async_support) exchange objects pointed at the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import ccxt.async_support as ccxt
import pytest

from tests.exchange_simulator import ExchangeSimulator, point_ccxt_at

Connect = Callable[..., Any]


@pytest.fixture
async def connect(simulator: ExchangeSimulator) -> AsyncIterator[Connect]:
    """A ccxt exchange object (default options) pointed at the simulator."""
    opened: list[Any] = []

    def make(exchange_id: str, **config: Any) -> Any:
        exchange = getattr(ccxt, exchange_id)({"enableRateLimit": False, **config})
        exchange.timeout_on_exit = 0  # close() otherwise sleeps 250 ms
        point_ccxt_at(exchange, simulator.origin)
        opened.append(exchange)
        return exchange

    yield make
    for exchange in opened:
        await exchange.close()
