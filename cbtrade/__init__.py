"""cb-trade data service: gap-filled historical OHLCV candles from ccxt exchanges."""
