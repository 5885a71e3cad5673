"""Binance spot public REST: /api/v3/exchangeInfo and /api/v3/klines.

klines answers the candles with ``startTime <= t <= endTime`` (ms, inclusive), at most
``limit`` (default 500, cap 1000), from the earliest end by default (Binance's own answer),
so ``startTime=0&endTime=<t>&limit=1`` is the first candle. A delisted market is listed with
``status: "BREAK"``.
"""

from __future__ import annotations

from aiohttp import web

from cbtrade.timeframes import timeframe_to_ms
from tests.exchange_simulator.core import SimulatorState
from tests.exchange_simulator.wire import fault, timeframe_names

EXCHANGE = "binance"


def market_id(symbol: str) -> str:
    return symbol.replace("/", "")


def add_routes(app: web.Application, state: SimulatorState) -> None:
    async def exchange_info(request: web.Request) -> web.Response:
        if status := await state.admit(EXCHANGE, "markets"):
            return _binance_fault(status)
        symbols = []
        for symbol, market in state.exchanges[EXCHANGE].markets.items():
            base, quote = symbol.split("/")
            symbols.append(
                {
                    "symbol": market_id(symbol),
                    "status": "TRADING" if market.trading else "BREAK",
                    "baseAsset": base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "orderTypes": ["LIMIT", "MARKET"],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [],
                    "permissions": ["SPOT"],
                    "permissionSets": [["SPOT"]],
                }
            )
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": 0,
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )

    async def klines(request: web.Request) -> web.Response:
        if status := await state.admit(EXCHANGE, "candles"):
            return _binance_fault(status)
        query = request.query
        symbols = {market_id(s): s for s in state.exchanges[EXCHANGE].markets}
        symbol = symbols.get(query.get("symbol", ""))
        timeframe = timeframe_names(EXCHANGE).get(query.get("interval", ""))
        if symbol is None or timeframe is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        limit = min(int(query.get("limit", 500)), 1000)
        first = int(query.get("startTime", 0))
        last = int(query.get("endTime", 2**62))
        empty = state.answer_empty(EXCHANGE, request.path_qs)
        candles = [] if empty else state.window(EXCHANGE, symbol, timeframe, first, last, limit)
        step = timeframe_to_ms(timeframe)
        rows = [
            [
                c.timestamp,
                f"{c.open:.8f}",
                f"{c.high:.8f}",
                f"{c.low:.8f}",
                f"{c.close:.8f}",
                f"{c.volume:.8f}",
                c.timestamp + step - 1,
                "0.0",
                1,
                "0.0",
                "0.0",
                "0",
            ]
            for c in candles
        ]
        return web.json_response(rows)

    async def futures_exchange_info(request: web.Request) -> web.Response:
        """USD-M (fapi) and COIN-M (dapi) markets: none, but a valid answer, so ccxt's default
        ``fetchMarkets`` types (spot, linear, inverse) load as well as ``{"types": ["spot"]}``."""
        if status := await state.admit(EXCHANGE, "markets"):
            return _binance_fault(status)
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": 0,
                "futuresType": "U_MARGINED",
                "rateLimits": [],
                "exchangeFilters": [],
                "assets": [],
                "symbols": [],
            }
        )

    app.router.add_get("/api/v3/exchangeInfo", exchange_info)
    app.router.add_get("/fapi/v1/exchangeInfo", futures_exchange_info)
    app.router.add_get("/dapi/v1/exchangeInfo", futures_exchange_info)
    app.router.add_get("/api/v3/klines", klines)


def _binance_fault(status: int) -> web.Response:
    if status == 429:
        return web.json_response(
            {"code": -1003, "msg": "Too many requests; current limit is 6000 request weight."},
            status=429,
        )
    return fault(status)
