"""Crypto.com Exchange v1 public REST: get-instruments and get-candlestick.

get-candlestick answers the candles with ``start_ts <= t < end_ts`` (ms; start inclusive, end
exclusive, which is what ccxt's ``[since - tf, since + limit * tf)`` request assumes),
at most ``count`` (default 25, cap 300), from the end of an over-full window that the
exchange's window style says: by default the newest, so ``start_ts=0&end_ts=<t>&count=1``
is the last candle before ``t``. A delisted market is listed with ``tradable: false``.
"""

from __future__ import annotations

from aiohttp import web

from tests.exchange_simulator.core import SimulatorState
from tests.exchange_simulator.wire import timeframe_names

EXCHANGE = "cryptocom"
BASE = "/exchange/v1/public"


def market_id(symbol: str) -> str:
    return symbol.replace("/", "_")


def fault(status: int, method: str) -> web.Response:
    """Crypto.com's own error envelope: TOO_MANY_REQUESTS, or ERR_INTERNAL."""
    code, message = (42901, "TOO_MANY_REQUESTS") if status == 429 else (50001, "ERR_INTERNAL")
    return web.json_response(
        {"id": 1, "method": method, "code": code, "message": message}, status=status
    )


def add_routes(app: web.Application, state: SimulatorState) -> None:
    async def instruments(request: web.Request) -> web.Response:
        if status := await state.admit(EXCHANGE, "markets"):
            return fault(status, "public/get-instruments")
        data = []
        for symbol, market in state.exchanges[EXCHANGE].markets.items():
            base, quote = symbol.split("/")
            data.append(
                {
                    "symbol": market_id(symbol),
                    "inst_type": "CCY_PAIR",
                    "display_name": symbol,
                    "base_ccy": base,
                    "quote_ccy": quote,
                    "quote_decimals": 2,
                    "quantity_decimals": 5,
                    "price_tick_size": "0.01",
                    "qty_tick_size": "0.00001",
                    "max_leverage": "50",
                    "tradable": market.trading,
                    "expiry_timestamp_ms": 0,
                    "beta_product": False,
                    "margin_buy_enabled": False,
                    "margin_sell_enabled": False,
                }
            )
        return web.json_response(
            {"id": 1, "method": "public/get-instruments", "code": 0, "result": {"data": data}}
        )

    async def candlestick(request: web.Request) -> web.Response:
        if status := await state.admit(EXCHANGE, "candles"):
            return fault(status, "public/get-candlestick")
        query = request.query
        symbols = {market_id(s): s for s in state.exchanges[EXCHANGE].markets}
        symbol = symbols.get(query.get("instrument_name", ""))
        timeframe = timeframe_names(EXCHANGE).get(query.get("timeframe", "1m"))
        if symbol is None or timeframe is None:
            return web.json_response(
                {
                    "id": 1,
                    "method": "public/get-candlestick",
                    "code": 40003,
                    "message": "INVALID_REQUEST",
                },
                status=400,
            )
        count = min(int(query.get("count", 25)), 300)
        first = int(query.get("start_ts", 0))
        last = int(query.get("end_ts", 2**62)) - 1  # end_ts exclusive
        empty = state.answer_empty(EXCHANGE, request.path_qs)
        candles = [] if empty else state.window(EXCHANGE, symbol, timeframe, first, last, count)
        data = [
            {
                "o": str(c.open),
                "h": str(c.high),
                "l": str(c.low),
                "c": str(c.close),
                "v": str(c.volume),
                "t": c.timestamp,
            }
            for c in candles
        ]
        return web.json_response(
            {
                "id": 1,
                "method": "public/get-candlestick",
                "code": 0,
                "result": {
                    "interval": query.get("timeframe"),
                    "data": data,
                    "instrument_name": query.get("instrument_name"),
                },
            }
        )

    app.router.add_get(f"{BASE}/get-instruments", instruments)
    app.router.add_get(f"{BASE}/get-candlestick", candlestick)
