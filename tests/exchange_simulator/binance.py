"""Binance spot public REST: /api/v3/exchangeInfo and /api/v3/klines (the futures APIs are
binance_futures').

klines answers the candles with ``startTime <= t <= endTime`` (ms, inclusive), at most
``limit`` (default 500, cap 1000), from the earliest end by default (Binance's own answer),
so ``startTime=0&endTime=<t>&limit=1`` is the first candle. A kline's close time is its
period's end less 1 ms (a ``1M`` kline's, the next month's start less 1). A delisted market
is listed with ``status: "BREAK"``.
"""

from __future__ import annotations

from aiohttp import web

from cbtrade.models import Candle
from tests.exchange_simulator.core import PriceType, SimulatorState
from tests.exchange_simulator.grids import grid
from tests.exchange_simulator.wire import fault, timeframe_names

EXCHANGE = "binance"
INVALID_SYMBOL = {"code": -1121, "msg": "Invalid symbol."}


def market_id(symbol: str) -> str:
    return symbol.replace("/", "")


async def serve_klines(
    state: SimulatorState,
    request: web.Request,
    ids: dict[str, str],
    *,
    cap: int,
    price: PriceType = "trade",
    id_param: str = "symbol",
) -> web.Response:
    """One klines request of any Binance API: ``ids`` maps the API's market ids (or pairs, as
    ``id_param`` says) to symbols; counted as a candle request."""
    if status := await state.admit(EXCHANGE, "candles"):
        return binance_fault(status)
    query = request.query
    symbol = ids.get(query.get(id_param, ""))
    timeframe = timeframe_names(EXCHANGE).get(query.get("interval", ""))
    if symbol is None or timeframe is None:
        return web.json_response(INVALID_SYMBOL, status=400)
    limit = min(int(query.get("limit", 500)), cap)
    first = int(query.get("startTime", 0))
    last = int(query.get("endTime", 2**62))
    empty = state.answer_empty(EXCHANGE, request.path_qs)
    candles = [] if empty else state.window(EXCHANGE, symbol, timeframe, first, last, limit, price)
    candle_grid = grid(EXCHANGE, timeframe)
    rows = [kline(c, candle_grid.close_time(c.timestamp), price) for c in candles]
    return web.json_response(rows)


def kline(candle: Candle, close_time: int, price: PriceType) -> list[object]:
    """The candle as a klines row; its close time field is ``close_time`` less 1 ms."""
    trade = price == "trade"
    return [
        candle.timestamp,
        f"{candle.open:.8f}",
        f"{candle.high:.8f}",
        f"{candle.low:.8f}",
        f"{candle.close:.8f}",
        f"{candle.volume:.8f}" if trade else "0",
        close_time - 1,
        "0.0" if trade else "0",
        1 if trade else (close_time - candle.timestamp) // 1000,  # trades, or seconds of prices
        "0.0" if trade else "0",
        "0.0" if trade else "0",
        "0",
    ]


def add_routes(app: web.Application, state: SimulatorState) -> None:
    async def exchange_info(request: web.Request) -> web.Response:
        if status := await state.admit(EXCHANGE, "markets"):
            return binance_fault(status)
        symbols = []
        for symbol, market in state.exchanges[EXCHANGE].markets.items():
            if market.kind != "spot":
                continue
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
        markets = state.exchanges[EXCHANGE].markets.values()
        ids = {market_id(m.symbol): m.symbol for m in markets if m.kind == "spot"}
        return await serve_klines(state, request, ids, cap=1000)

    app.router.add_get("/api/v3/exchangeInfo", exchange_info)
    app.router.add_get("/api/v3/klines", klines)


def binance_fault(status: int) -> web.Response:
    """Binance's own answer to a rate-limited request; a gateway failure otherwise."""
    if status == 429:
        return web.json_response(
            {"code": -1003, "msg": "Too many requests; current limit is 6000 request weight."},
            status=429,
        )
    return fault(status)
