"""Kraken public REST: /0/public/Assets, /0/public/AssetPairs and /0/public/OHLC.

OHLC keeps only the newest 720 candles of a pair (the forming one among them) and answers
those with ``time > since`` (seconds), oldest first, with ``last``; it takes no end or count,
so there is no window to probe. A delisted pair is listed with ``status: "cancel_only"``, the
AssetPairs status of a pair that no longer trades (the others are ``online``,
``post_only``, ``limit_only`` and ``reduce_only``).
"""

from __future__ import annotations

from aiohttp import web

from tests.exchange_simulator.core import SimulatorState, now_ms
from tests.exchange_simulator.grids import grid
from tests.exchange_simulator.wire import timeframe_names

EXCHANGE = "kraken"
DEPTH = 720
# Kraken's own asset codes for the currencies it calls differently.
ASSET_CODES = {"BTC": "XXBT", "USD": "ZUSD", "EUR": "ZEUR", "ETH": "XETH"}


def asset(code: str) -> str:
    return ASSET_CODES.get(code, code)


def pair_id(symbol: str) -> str:
    base, quote = symbol.split("/")
    return asset(base) + asset(quote)


def add_routes(app: web.Application, state: SimulatorState) -> None:
    def envelope(result: object) -> web.Response:
        return web.json_response({"error": [], "result": result})

    async def failed(status: int) -> web.Response:
        message = "EAPI:Rate limit exceeded" if status == 429 else "EService:Unavailable"
        return web.json_response({"error": [message]}, status=status)

    async def assets(request: web.Request) -> web.Response:
        if status := await state.admit(EXCHANGE, "markets"):
            return await failed(status)
        codes = {part for s in state.exchanges[EXCHANGE].markets for part in s.split("/")}
        return envelope(
            {
                asset(code): {
                    "aclass": "currency",
                    "altname": "XBT" if code == "BTC" else code,
                    "decimals": 10,
                    "display_decimals": 5,
                    "status": "enabled",
                }
                for code in codes
            }
        )

    async def asset_pairs(request: web.Request) -> web.Response:
        if status := await state.admit(EXCHANGE, "markets"):
            return await failed(status)
        pairs = {}
        for symbol, market in state.exchanges[EXCHANGE].markets.items():
            base, quote = symbol.split("/")
            altname = symbol.replace("BTC", "XBT").replace("/", "")
            pairs[pair_id(symbol)] = {
                "altname": altname,
                "wsname": symbol.replace("BTC", "XBT"),
                "aclass_base": "currency",
                "base": asset(base),
                "aclass_quote": "currency",
                "quote": asset(quote),
                "lot": "unit",
                "cost_decimals": 5,
                "pair_decimals": 2,
                "lot_decimals": 8,
                "lot_multiplier": 1,
                "leverage_buy": [],
                "leverage_sell": [],
                "fees": [[0, 0.26]],
                "fees_maker": [[0, 0.16]],
                "fee_volume_currency": "ZUSD",
                "margin_call": 80,
                "margin_stop": 40,
                "ordermin": "0.0001",
                "costmin": "0.5",
                "tick_size": "0.01",
                "status": "online" if market.trading else "cancel_only",
            }
        return envelope(pairs)

    async def ohlc(request: web.Request) -> web.Response:
        if status := await state.admit(EXCHANGE, "candles"):
            return await failed(status)
        query = request.query
        by_id = {pair_id(s): s for s in state.exchanges[EXCHANGE].markets}
        by_alt = {s.replace("BTC", "XBT").replace("/", ""): s for s in by_id.values()}
        symbol = by_id.get(query.get("pair", "")) or by_alt.get(query.get("pair", ""))
        timeframe = timeframe_names(EXCHANGE).get(query.get("interval", "1"))
        if symbol is None or timeframe is None:
            return web.json_response({"error": ["EQuery:Unknown asset pair"]}, status=200)
        candle_grid = grid(EXCHANGE, timeframe)
        newest_index = candle_grid.index(now_ms())
        newest = candle_grid.open_time(newest_index)
        oldest = candle_grid.open_time(newest_index - DEPTH + 1)
        empty = state.answer_empty(EXCHANGE, request.path_qs)
        kept = [] if empty else state.candles(EXCHANGE, symbol, timeframe, oldest, newest)
        since_ms = int(float(query.get("since", 0)) * 1000)
        rows = [
            [
                c.timestamp // 1000,
                str(c.open),
                str(c.high),
                str(c.low),
                str(c.close),
                str(c.close),
                str(c.volume),
                1,
            ]
            for c in kept
            if c.timestamp > since_ms
        ]
        return envelope({pair_id(symbol): rows, "last": newest // 1000})

    app.router.add_get("/0/public/Assets", assets)
    app.router.add_get("/0/public/AssetPairs", asset_pairs)
    app.router.add_get("/0/public/OHLC", ohlc)
