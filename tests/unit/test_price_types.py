"""Series symbols: a ccxt symbol and a price type in one string, and back."""

from __future__ import annotations

import pytest

from cbtrade.price_types import PRICE_TYPES, series_symbol, split_series_symbol


@pytest.mark.parametrize("symbol", ["BTC/USD", "BTC/USDT:USDT", "BTC/USDT:USDT-250328"])
@pytest.mark.parametrize("price", PRICE_TYPES)
def test_series_symbols_split_back_into_symbol_and_price(symbol: str, price: str) -> None:
    series = series_symbol(symbol, price)  # type: ignore[arg-type]
    assert split_series_symbol(series) == (symbol, price)
    assert (series == symbol) == (price == "trade")


@pytest.mark.parametrize("value", ["BTC/USD@trade", "BTC/USD@last", "@mark", "BTC/USD@"])
def test_anything_else_after_the_separator_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="does not name a price type"):
        split_series_symbol(value)


def test_an_unknown_price_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown price type 'last'"):
        series_symbol("BTC/USD", "last")  # type: ignore[arg-type]
