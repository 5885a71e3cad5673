"""Price types: which price a candle series follows, and how a series names it.

A perpetual or futures contract has, beside its trade candles, candles of its mark price,
its index price and its premium index (mark over index), each a series of its own with its
own coverage. The service carries the price type inside the *series symbol*: the ccxt
unified symbol for trade candles (``BTC/USDT:USDT``), and ``{symbol}@{price}`` for the
others (``BTC/USDT:USDT@mark``). ``@`` never occurs in a ccxt symbol (the API refuses it
in the ``symbol`` parameter), so the two parts always split back apart; storage keys,
continuation tokens, locks and caches keep one string per series, and only the exchange
plugin and the API's edges take it apart.
"""

from __future__ import annotations

from typing import Literal, get_args

from cbtrade.errors import InvalidInputError

PriceType = Literal["trade", "mark", "index", "premium_index"]
PRICE_TYPES: tuple[PriceType, ...] = get_args(PriceType)
DEFAULT_PRICE: PriceType = "trade"
SEPARATOR = "@"


def series_symbol(symbol: str, price: PriceType = DEFAULT_PRICE) -> str:
    """The series symbol of ``symbol``'s ``price`` candles: ``symbol`` itself for trades."""
    if price not in PRICE_TYPES:
        raise InvalidInputError(f"unknown price type {price!r}; known: {', '.join(PRICE_TYPES)}")
    return symbol if price == DEFAULT_PRICE else f"{symbol}{SEPARATOR}{price}"


def split_series_symbol(value: str) -> tuple[str, PriceType]:
    """The ccxt symbol and the price type a series symbol names; InvalidInputError (a
    ValueError) if either is missing or the part after ``@`` is not a price type other than
    ``trade`` (which is never spelled out)."""
    symbol, separator, price = value.rpartition(SEPARATOR)
    if not separator:
        return value, DEFAULT_PRICE
    if price == DEFAULT_PRICE or price not in PRICE_TYPES or not symbol:
        raise InvalidInputError(f"{value!r} does not name a price type after {SEPARATOR!r}")
    return symbol, price
