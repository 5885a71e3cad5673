"""CCXTExchangeClient through the real ccxt code over HTTP, against the exchange simulator
speaking each exchange's REST wire format (plan 2.4 and 6.2)."""

from __future__ import annotations

import time

import pytest

from cbtrade.errors import (
    ExchangeError,
    ExchangeHistoryUnavailableError,
    ExchangeUnavailableError,
    UnknownSymbolError,
)
from tests.exchange_simulator import ExchangeSimulator, SimulatedMarket
from tests.integration.exchange_source.conftest import PluginFactory

M5 = 300_000
LISTED = 1_704_067_200_000  # 2024-01-01, the simulator's default listing


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def expected_calls(simulator: ExchangeSimulator, exchange: str, start: int, end: int) -> int:
    return -(-((end - start) // M5) // simulator.max_per_call(exchange))


EXCHANGES = ["cryptocom", "binance", "coinbase"]
SYMBOL = {"cryptocom": "BTC/USD", "binance": "BTC/USDT", "coinbase": "BTC/USD", "kraken": "BTC/USD"}


@pytest.mark.parametrize("exchange", [*EXCHANGES, "kraken"])
async def test_check_coin_availability(
    simulator: ExchangeSimulator, make_plugin: PluginFactory, exchange: str
) -> None:
    plugin = make_plugin(exchange)
    assert await plugin.check_coin_availability(SYMBOL[exchange]) is True
    assert await plugin.check_coin_availability("NOPE/USD") is False
    loads = simulator.market_requests(exchange)
    assert await plugin.check_coin_availability(SYMBOL[exchange]) is True
    assert simulator.market_requests(exchange) == loads  # markets are cached


@pytest.mark.parametrize("exchange", EXCHANGES)
@pytest.mark.parametrize("style", ["latest", "earliest"])
async def test_range_across_listing_and_holes_is_exact_with_minimal_calls(
    simulator: ExchangeSimulator, make_plugin: PluginFactory, exchange: str, style: str
) -> None:
    simulator.set_window_style(exchange, style)  # type: ignore[arg-type]
    plugin = make_plugin(exchange)
    start, end = LISTED - 250 * M5, LISTED + 1_777 * M5
    candles = await plugin.fetch_historical_data(SYMBOL[exchange], "5m", start, end)
    assert candles == simulator.truth(exchange, SYMBOL[exchange], "5m", start, end)
    assert candles[0].timestamp >= LISTED
    assert simulator.candle_requests(exchange) == expected_calls(simulator, exchange, start, end)


@pytest.mark.parametrize("exchange", EXCHANGES)
@pytest.mark.parametrize("style", ["latest", "earliest"])
async def test_range_up_to_now_drops_the_forming_candle(
    simulator: ExchangeSimulator, make_plugin: PluginFactory, exchange: str, style: str
) -> None:
    simulator.set_window_style(exchange, style)  # type: ignore[arg-type]
    plugin = make_plugin(exchange)
    now = now_ms()
    horizon = now - now % M5
    start, end = horizon - 400 * M5, horizon + 10 * M5
    candles = await plugin.fetch_historical_data(SYMBOL[exchange], "5m", start, end)
    assert candles == simulator.truth(exchange, SYMBOL[exchange], "5m", start, end, now=now)
    assert candles[-1].timestamp + M5 <= now_ms()


async def test_kraken_serves_recent_history_and_reports_what_it_cannot(
    simulator: ExchangeSimulator, make_plugin: PluginFactory
) -> None:
    plugin = make_plugin("kraken")
    now = now_ms()
    horizon = now - now % M5
    recent = await plugin.fetch_historical_data("BTC/USD", "5m", horizon - 600 * M5, horizon)
    assert recent == simulator.truth("kraken", "BTC/USD", "5m", horizon - 600 * M5, horizon)
    calls = simulator.candle_requests("kraken")
    with pytest.raises(ExchangeHistoryUnavailableError) as caught:
        await plugin.fetch_historical_data("BTC/USD", "5m", horizon - 2_000 * M5, horizon)
    assert caught.value.earliest_available is not None
    assert simulator.candle_requests("kraken") == calls


@pytest.mark.parametrize("status", [429, 500])
async def test_fault_bursts_recover(
    simulator: ExchangeSimulator, make_plugin: PluginFactory, status: int
) -> None:
    plugin = make_plugin("cryptocom")
    await plugin.check_coin_availability("BTC/USD")
    simulator.inject_faults("cryptocom", status=status, count=2)
    start, end = LISTED, LISTED + 300 * M5
    candles = await plugin.fetch_historical_data("BTC/USD", "5m", start, end)
    assert candles == simulator.truth("cryptocom", "BTC/USD", "5m", start, end)


EXCHANGES = ["cryptocom", "binance", "kraken", "coinbase"]


def recent_window(exchange_id: str) -> tuple[str, int, int]:
    """A symbol the exchange lists and 300 closed 5m candles before now (Kraken serves 720)."""
    moment = now_ms()
    horizon = moment - moment % M5
    return ("BTC/USDT" if exchange_id == "binance" else "BTC/USD"), horizon - 300 * M5, horizon


@pytest.mark.parametrize("exchange_id", EXCHANGES)
# ccxt maps 502; Cloudflare's 524 and a load balancer's 499 it does not; a 200 page is a
# captive portal or a bad proxy
@pytest.mark.parametrize("status", [502, 524, 499, 200])
async def test_gateway_pages_are_retried(
    simulator: ExchangeSimulator, make_plugin: PluginFactory, exchange_id: str, status: int
) -> None:
    plugin = make_plugin(exchange_id)
    symbol, start, end = recent_window(exchange_id)
    await plugin.check_coin_availability(symbol)
    simulator.inject_gateway_faults(status=status, count=2)
    candles = await plugin.fetch_historical_data(symbol, "5m", start, end)
    assert candles == simulator.truth(exchange_id, symbol, "5m", start, end)


@pytest.mark.parametrize("exchange_id", EXCHANGES)
async def test_a_gateway_page_with_an_unmapped_4xx_is_a_final_error_not_empty_data(
    simulator: ExchangeSimulator, make_plugin: PluginFactory, exchange_id: str
) -> None:
    plugin = make_plugin(exchange_id)
    symbol, start, end = recent_window(exchange_id)
    await plugin.check_coin_availability(symbol)
    simulator.inject_gateway_faults(status=406, count=1)
    with pytest.raises(ExchangeError, match="406 Not Acceptable") as caught:
        await plugin.fetch_historical_data(symbol, "5m", start, end)
    assert not isinstance(caught.value, ExchangeUnavailableError)  # not retried
    assert await plugin.fetch_historical_data(symbol, "5m", start, end)


async def test_a_gateway_that_stays_down_ends_in_exchange_unavailable(
    simulator: ExchangeSimulator, make_plugin: PluginFactory
) -> None:
    plugin = make_plugin("cryptocom", retry_attempts=2, retry_max_wait_seconds=0.05)
    await plugin.check_coin_availability("BTC/USD")
    simulator.inject_gateway_faults(status=503, count=2)
    with pytest.raises(ExchangeUnavailableError, match=r"failed 2 times.*503 Service Unavailable"):
        await plugin.fetch_historical_data("BTC/USD", "5m", LISTED, LISTED + 300 * M5)


async def test_permanent_outage_ends_in_exchange_unavailable_within_bounded_time(
    simulator: ExchangeSimulator, make_plugin: PluginFactory
) -> None:
    plugin = make_plugin("binance", retry_attempts=3, retry_max_wait_seconds=0.2)
    simulator.set_outage("binance", 503)
    began = time.monotonic()
    with pytest.raises(ExchangeUnavailableError):
        await plugin.fetch_historical_data("BTC/USDT", "5m", LISTED, LISTED + 10 * M5)
    assert time.monotonic() - began < 10


async def test_unknown_symbol_fails_fast_with_no_candle_call(
    simulator: ExchangeSimulator, make_plugin: PluginFactory
) -> None:
    plugin = make_plugin("cryptocom")
    with pytest.raises(UnknownSymbolError):
        await plugin.fetch_historical_data("NOPE/USD", "5m", LISTED, LISTED + M5)
    assert simulator.candle_requests("cryptocom") == 0


async def test_a_later_listing_has_nothing_before_it(
    simulator: ExchangeSimulator, make_plugin: PluginFactory
) -> None:
    listed = LISTED + 1_000 * M5
    simulator.set_markets("binance", [SimulatedMarket("SOL/USDT", listed, quiet_every=5)])
    plugin = make_plugin("binance")
    start, end = listed - 1_500 * M5, listed + 500 * M5
    candles = await plugin.fetch_historical_data("SOL/USDT", "5m", start, end)
    assert candles == simulator.truth("binance", "SOL/USDT", "5m", start, end)
    assert all(c.timestamp >= listed for c in candles)
    assert simulator.candle_requests("binance") == expected_calls(simulator, "binance", start, end)
