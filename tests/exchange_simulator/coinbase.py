"""Coinbase Advanced Trade public REST (ccxt ``coinbase``): market products and candles,
plus the v2 currency endpoints ccxt reads while loading markets.

Candles answer ``start <= t <= end`` (epoch seconds, inclusive), newest first as Coinbase
returns them, with granularity names such as ``FIVE_MINUTE``. A window spanning more than
350 candles (the real cap; ccxt asks for 300) is rejected with ``INVALID_ARGUMENT``, as
Coinbase documents, so a wide window cannot probe for the first or last candle here. A
delisted product is listed with ``status: "delisted"`` and ``trading_disabled: true``.
"""

from __future__ import annotations

from aiohttp import web

from cbtrade.timeframes import timeframe_to_ms
from tests.exchange_simulator.core import SimulatorState
from tests.exchange_simulator.wire import fault, timeframe_names

EXCHANGE = "coinbase"
CAP = 350


def product_id(symbol: str) -> str:
    return symbol.replace("/", "-")


def add_routes(app: web.Application, state: SimulatorState) -> None:
    async def currencies(request: web.Request) -> web.Response:
        if status := await state.admit(EXCHANGE, "markets"):
            return fault(status)
        return web.json_response({"data": []})

    async def exchange_rates(request: web.Request) -> web.Response:
        if status := await state.admit(EXCHANGE, "markets"):
            return fault(status)
        return web.json_response({"data": {"currency": "USD", "rates": {}}})

    async def products(request: web.Request) -> web.Response:
        if status := await state.admit(EXCHANGE, "markets"):
            return fault(status)
        if request.query.get("product_type") == "FUTURE":
            return web.json_response({"products": [], "num_products": 0})
        listed = []
        for symbol, market in state.exchanges[EXCHANGE].markets.items():
            base, quote = symbol.split("/")
            listed.append(
                {
                    "product_id": product_id(symbol),
                    "price": "100",
                    "base_increment": "0.00000001",
                    "quote_increment": "0.01",
                    "quote_min_size": "1",
                    "quote_max_size": "150000000",
                    "base_min_size": "0.00000001",
                    "base_max_size": "3400",
                    "base_name": base,
                    "quote_name": quote,
                    "is_disabled": False,
                    "status": "online" if market.trading else "delisted",
                    "cancel_only": False,
                    "limit_only": False,
                    "post_only": False,
                    "trading_disabled": not market.trading,
                    "auction_mode": False,
                    "product_type": "SPOT",
                    "quote_currency_id": quote,
                    "base_currency_id": base,
                    "base_display_symbol": base,
                    "quote_display_symbol": quote,
                    "view_only": False,
                    "price_increment": "0.01",
                    "display_name": product_id(symbol),
                    "product_venue": "CBE",
                }
            )
        return web.json_response({"products": listed, "num_products": len(listed)})

    async def candles(request: web.Request) -> web.Response:
        if status := await state.admit(EXCHANGE, "candles"):
            return fault(status)
        query = request.query
        by_id = {product_id(s): s for s in state.exchanges[EXCHANGE].markets}
        symbol = by_id.get(request.match_info["product_id"])
        timeframe = timeframe_names(EXCHANGE).get(query.get("granularity", ""))
        if symbol is None or timeframe is None:
            return web.json_response(
                {"error": "NOT_FOUND", "message": "product not found"}, status=404
            )
        first = int(query.get("start", 0)) * 1000
        last = int(query.get("end", 2**40)) * 1000
        if (last - first) // timeframe_to_ms(timeframe) > CAP:
            message = (
                "start and end argument is invalid - number of candles requested should be "
                f"less than {CAP}"
            )
            return web.json_response(
                {"error": "INVALID_ARGUMENT", "error_details": message, "message": message},
                status=400,
            )
        empty = state.answer_empty(EXCHANGE, request.path_qs)
        window = [] if empty else state.window(EXCHANGE, symbol, timeframe, first, last, CAP)
        rows = [
            {
                "start": str(c.timestamp // 1000),
                "low": str(c.low),
                "high": str(c.high),
                "open": str(c.open),
                "close": str(c.close),
                "volume": str(c.volume),
            }
            for c in reversed(window)
        ]
        return web.json_response({"candles": rows})

    app.router.add_get("/v2/currencies", currencies)
    app.router.add_get("/v2/currencies/crypto", currencies)
    app.router.add_get("/v2/exchange-rates", exchange_rates)
    app.router.add_get("/api/v3/brokerage/market/products", products)
    app.router.add_get("/api/v3/brokerage/market/products/{product_id}/candles", candles)
