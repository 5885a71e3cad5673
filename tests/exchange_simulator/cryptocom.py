"""Crypto.com Exchange v1 public REST: get-instruments, get-candlestick and get-valuations.

get-candlestick answers the candles with ``start_ts <= t < end_ts`` (ms; start inclusive, end
exclusive, which is what ccxt's ``[since - tf, since + limit * tf)`` request assumes),
at most ``count`` (default 25, cap 300), from the end of an over-full window that the
exchange's window style says: by default the newest, so ``start_ts=0&end_ts=<t>&count=1``
is the last candle before ``t``. A delisted market is listed with ``tradable: false``.
Perpetuals are ``BTCUSD-PERP`` (``inst_type: PERPETUAL_SWAP``), dated futures
``BTCUSD-240329``.

get-valuations with ``valuation_type=funding_hist`` answers a perpetual's funding events with
``start_ts <= t < end_ts`` (as get-candlestick) and at most ``count`` (default 25, cap 300),
from the same end of an over-full window, newest first, as Crypto.com sends them (ccxt sorts
them); ``mark_price`` and ``index_price`` answer the minute's mark or index price alike.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from tests.exchange_simulator.core import FundingEvent, PriceType, SimulatedMarket, SimulatorState
from tests.exchange_simulator.wire import timeframe_names

EXCHANGE = "cryptocom"
BASE = "/exchange/v1/public"
VALUATIONS: dict[str, PriceType | None] = {
    "funding_hist": None,
    "mark_price": "mark",
    "index_price": "index",
}


def market_id(symbol: str) -> str:
    """``BTC_USD`` for spot, ``BTCUSD-PERP`` for a perpetual, ``BTCUSD-240329`` for a future."""
    if ":" not in symbol:
        return symbol.replace("/", "_")
    pair, settlement = symbol.split(":")
    expiry = settlement.split("-")[1] if "-" in settlement else "PERP"
    return f"{pair.replace('/', '')}-{expiry}"


def answer(method: str, result: dict[str, object]) -> web.Response:
    """Crypto.com's success envelope."""
    return web.json_response({"id": 1, "method": method, "code": 0, "result": result})


def invalid_request(method: str) -> web.Response:
    """Crypto.com's answer to an unknown instrument or parameter."""
    return web.json_response(
        {"id": 1, "method": method, "code": 40003, "message": "INVALID_REQUEST"}, status=400
    )


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
        data = [instrument(m) for m in state.exchanges[EXCHANGE].markets.values()]
        return answer("public/get-instruments", {"data": data})

    async def candlestick(request: web.Request) -> web.Response:
        if status := await state.admit(EXCHANGE, "candles"):
            return fault(status, "public/get-candlestick")
        query = request.query
        symbols = {market_id(s): s for s in state.exchanges[EXCHANGE].markets}
        symbol = symbols.get(query.get("instrument_name", ""))
        timeframe = timeframe_names(EXCHANGE).get(query.get("timeframe", "1m"))
        if symbol is None or timeframe is None:
            return invalid_request("public/get-candlestick")
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
        return answer(
            "public/get-candlestick",
            {
                "interval": query.get("timeframe"),
                "data": data,
                "instrument_name": query.get("instrument_name"),
            },
        )

    async def valuations(request: web.Request) -> web.Response:
        method = "public/get-valuations"
        if status := await state.admit(EXCHANGE, "funding"):
            return fault(status, method)
        query = request.query
        name = query.get("instrument_name", "")
        kind = query.get("valuation_type", "")
        symbol = valued_instruments(state, kind).get(name)
        if symbol is None:
            return invalid_request(method)
        count = min(int(query.get("count", 25)), 300)
        first = int(query.get("start_ts", 0))
        last = int(query.get("end_ts", 2**62)) - 1  # end_ts exclusive
        latest = state.exchanges[EXCHANGE].style == "latest"
        price = VALUATIONS[kind]
        if price is None:
            points = state.funding(EXCHANGE, symbol, first, last, count, latest=latest)
        else:
            candles = state.window(EXCHANGE, symbol, "1m", first, last, count, price)
            points = [FundingEvent(c.timestamp, c.open) for c in candles]
        data = [{"v": decimal_text(v), "t": t} for t, v in reversed(points)]
        return answer(method, {"data": data, "instrument_name": name})

    app.router.add_get(f"{BASE}/get-instruments", instruments)
    app.router.add_get(f"{BASE}/get-candlestick", candlestick)
    app.router.add_get(f"{BASE}/get-valuations", valuations)


def valued_instruments(state: SimulatorState, valuation_type: str) -> dict[str, str]:
    """The instrument names get-valuations takes for ``valuation_type`` -> symbols: funding
    and mark prices are a perpetual's; an index price is also asked of ``BTCUSD-INDEX``."""
    markets = [m for m in state.exchanges[EXCHANGE].markets.values() if m.kind == "swap"]
    if valuation_type not in VALUATIONS:
        return {}
    names = {market_id(m.symbol): m.symbol for m in markets}
    if valuation_type == "index_price":
        names |= {f"{m.pair.replace('/', '')}-INDEX": m.symbol for m in markets}
    return names


def instrument(market: SimulatedMarket) -> dict[str, object]:
    """The market as get-instruments lists it."""
    base, quote = market.pair.split("/")
    common = {
        "symbol": market_id(market.symbol),
        "base_ccy": base,
        "quote_ccy": quote,
        "tradable": market.trading,
        "beta_product": False,
        "margin_buy_enabled": False,
        "margin_sell_enabled": False,
    }
    if market.kind == "spot":
        return common | {
            "inst_type": "CCY_PAIR",
            "display_name": market.symbol,
            "quote_decimals": 2,
            "quantity_decimals": 5,
            "price_tick_size": "0.01",
            "qty_tick_size": "0.00001",
            "max_leverage": "50",
            "expiry_timestamp_ms": 0,
        }
    expiry = market.expiry or 0
    return common | {
        "inst_type": "PERPETUAL_SWAP" if market.kind == "swap" else "FUTURE",
        "display_name": f"{base}{quote} Perpetual"
        if market.kind == "swap"
        else f"{base}{quote} Futures {datetime.fromtimestamp(expiry / 1000, UTC):%Y%m%d}",
        "quote_decimals": 1,
        "quantity_decimals": 4,
        "price_tick_size": "0.1",
        "qty_tick_size": "0.0001",
        "max_leverage": "100",
        "expiry_timestamp_ms": expiry,
        "underlying_symbol": f"{base}{quote}-INDEX",
        "contract_size": "1",
    }


def decimal_text(value: float) -> str:
    """``value`` in plain decimal notation, as Crypto.com writes numbers (never ``1e-05``)."""
    text = f"{value:.8f}".rstrip("0")
    return text + "0" if text.endswith(".") else text
