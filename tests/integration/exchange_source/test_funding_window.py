"""CCXTExchangeClient.fetch_funding_window through the real ccxt code against the exchange
simulator: one call per window, and the part of the window an over-full answer covers,
from the end each exchange fills it from."""

from __future__ import annotations

import pytest

from cbtrade.errors import FundingHistoryUnavailableError, UnknownSymbolError
from cbtrade.models import FundingRate, TimeRange
from tests.exchange_simulator import ExchangeSimulator
from tests.integration.exchange_source.conftest import PluginFactory

DAY = 86_400_000
HOUR = 3_600_000
START = 1_704_067_200_000  # 2024-01-01


def truth(
    simulator: ExchangeSimulator, exchange: str, symbol: str, start: int, end: int
) -> list[FundingRate]:
    return [
        FundingRate(e.timestamp, e.rate)
        for e in simulator.funding_truth(exchange, symbol, start, end)
    ]


@pytest.mark.parametrize(
    ("exchange", "symbol", "per_call"),
    [("binance", "BTC/USDT:USDT", 1000), ("cryptocom", "BTC/USD:USD", 300)],
)
async def test_a_window_is_answered_whole_or_its_covered_part_exactly(
    simulator: ExchangeSimulator,
    make_plugin: PluginFactory,
    exchange: str,
    symbol: str,
    per_call: int,
) -> None:
    plugin = make_plugin(exchange)
    small = await plugin.fetch_funding_window(symbol, START, START + 2 * DAY)
    assert small.events == truth(simulator, exchange, symbol, START, START + 2 * DAY)
    assert small.covered == TimeRange(START, START + 2 * DAY)
    # A window of more events than one call answers: the covered part holds exactly them.
    end = START + 400 * DAY
    full = await plugin.fetch_funding_window(symbol, START, end)
    assert len(full.events) == per_call
    assert full.events == truth(simulator, exchange, symbol, *full.covered)
    if exchange == "binance":  # filled from the window's start
        assert full.covered == TimeRange(START, full.events[-1].timestamp + 1)
    else:  # filled from its end: asked forwards, a call's events at hourly funding at most
        assert full.covered == TimeRange(START, START + per_call * HOUR)
    assert simulator.funding_requests(exchange) == 2


async def test_symbols_without_funding_are_typed_errors(
    simulator: ExchangeSimulator, make_plugin: PluginFactory
) -> None:
    binance = make_plugin("binance")
    with pytest.raises(FundingHistoryUnavailableError, match="spot"):
        await binance.fetch_funding_window("BTC/USDT", START, START + DAY)
    with pytest.raises(UnknownSymbolError):
        await binance.fetch_funding_window("NOPE/USDT:USDT", START, START + DAY)
    with pytest.raises(FundingHistoryUnavailableError, match="kraken"):
        await make_plugin("kraken").fetch_funding_window("BTC/USD", START, START + DAY)
    assert simulator.funding_requests("binance") == 0
