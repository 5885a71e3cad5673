"""A local exchange simulator speaking Crypto.com's, Binance's (spot and USDⓈ-M futures),
Kraken's and Coinbase's REST wire formats, for the tests and for offline demos
(``python -m tests.exchange_simulator``)."""

from tests.exchange_simulator.core import FundingEvent, SimulatedMarket
from tests.exchange_simulator.server import ExchangeSimulator, point_ccxt_at

__all__ = ["ExchangeSimulator", "FundingEvent", "SimulatedMarket", "point_ccxt_at"]
