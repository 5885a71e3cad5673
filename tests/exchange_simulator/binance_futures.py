"""Binance USDⓈ-M futures public REST (fapi): exchangeInfo, the four klines (trade, mark,
index, premium index) and the funding rate history; and COIN-M's (dapi) exchangeInfo, which
lists no markets.

The klines answer as spot's do (``startTime <= t <= endTime``, from the style end, default
500) but up to 1500; ``indexPriceKlines`` takes the ``pair`` (``BTCUSDT``), which the pair's
perpetual and dated futures share. ``fundingRate`` answers the events with ``startTime <= t
<= endTime``, at most ``limit`` (default 100, cap 1000), oldest first: from ``startTime`` on
when it is sent, else the newest (Binance's documented answer). exchangeInfo lists each
perpetual (``contractType: PERPETUAL``, ``deliveryDate`` 2100-12-25, Binance's "never") and
dated future (``CURRENT_QUARTER``, delivered at its expiry); one that has ended, delivered or
delisted, stays listed with ``status: "SETTLING"``, as Binance lists them, so ccxt loads it as
inactive with its expiry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from tests.exchange_simulator.binance import (
    EXCHANGE,
    INVALID_SYMBOL,
    binance_fault,
    serve_klines,
)
from tests.exchange_simulator.core import (
    PriceType,
    SimulatedMarket,
    SimulatorState,
    candle_at,
)

PERPETUAL_DELIVERY = 4_133_404_800_000  # 2100-12-25T08:00:00Z, what Binance sends for "never"
KLINES: dict[str, PriceType] = {
    "/fapi/v1/klines": "trade",
    "/fapi/v1/markPriceKlines": "mark",
    "/fapi/v1/indexPriceKlines": "index",
    "/fapi/v1/premiumIndexKlines": "premiumIndex",
}


def market_id(market: SimulatedMarket) -> str:
    """``BTCUSDT`` for a perpetual, ``BTCUSDT_240329`` for a dated future."""
    pair = market.pair.replace("/", "")
    if market.kind == "future" and market.expiry is not None:
        return f"{pair}_{datetime.fromtimestamp(market.expiry / 1000, UTC):%y%m%d}"
    return pair


def futures_markets(state: SimulatorState) -> list[SimulatedMarket]:
    """The USDⓈ-M markets: the swaps and futures settled in their quote currency."""
    return [
        m
        for m in state.exchanges[EXCHANGE].markets.values()
        if m.kind != "spot" and m.symbol.split(":")[1].split("-")[0] == m.pair.split("/")[1]
    ]


def symbol_entry(market: SimulatedMarket) -> dict[str, object]:
    """The market as fapi's exchangeInfo lists it."""
    base, quote = market.pair.split("/")
    return {
        "symbol": market_id(market),
        "pair": base + quote,
        "contractType": "PERPETUAL" if market.kind == "swap" else "CURRENT_QUARTER",
        "deliveryDate": PERPETUAL_DELIVERY if market.expiry is None else market.expiry,
        "onboardDate": market.listed_at,
        "status": "TRADING" if market.trading else "SETTLING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": quote,
        "pricePrecision": 2,
        "quantityPrecision": 3,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.10",
                "maxPrice": "4529764",
                "tickSize": "0.10",
            },
            {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.001",
                "maxQty": "120",
                "stepSize": "0.001",
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": "100"},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


def add_routes(app: web.Application, state: SimulatorState) -> None:
    async def exchange_info(request: web.Request) -> web.Response:
        if status := await state.admit(EXCHANGE, "markets"):
            return binance_fault(status)
        markets = futures_markets(state)
        settles = sorted({m.pair.split("/")[1] for m in markets})
        assets = [
            {"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000"} for a in settles
        ]
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": 0,
                "futuresType": "U_MARGINED",
                "rateLimits": [],
                "exchangeFilters": [],
                "assets": assets,
                "symbols": [symbol_entry(m) for m in markets],
            }
        )

    async def coin_margined_exchange_info(request: web.Request) -> web.Response:
        """COIN-M (dapi) markets: none, but a valid answer, so ccxt's default ``fetchMarkets``
        types (spot, linear, inverse) load as well as ``{"types": ["spot"]}``."""
        if status := await state.admit(EXCHANGE, "markets"):
            return binance_fault(status)
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": 0,
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": [],
            }
        )

    def klines_of(price: PriceType) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def klines(request: web.Request) -> web.Response:
            markets = futures_markets(state)
            if price == "index":  # by pair: every contract of the pair has the same index
                ids = {market_id(m).split("_")[0]: m.symbol for m in reversed(markets)}
                return await serve_klines(
                    state, request, ids, cap=1500, price=price, id_param="pair"
                )
            ids = {market_id(m): m.symbol for m in markets}
            return await serve_klines(state, request, ids, cap=1500, price=price)

        return klines

    async def funding_rate(request: web.Request) -> web.Response:
        if status := await state.admit(EXCHANGE, "funding"):
            return binance_fault(status)
        query = request.query
        ids = {market_id(m): m.symbol for m in futures_markets(state)}
        symbol = ids.get(query.get("symbol", ""))
        if symbol is None:
            return web.json_response(INVALID_SYMBOL, status=400)
        limit = min(int(query.get("limit", 100)), 1000)
        first = int(query.get("startTime", 0))
        last = int(query.get("endTime", 2**62))
        latest = "startTime" not in query
        events = state.funding(EXCHANGE, symbol, first, last, limit, latest=latest)
        return web.json_response(
            [
                {
                    "symbol": query["symbol"],
                    "fundingTime": e.timestamp,
                    "fundingRate": f"{e.rate:.8f}",
                    "markPrice": f"{candle_at(EXCHANGE, symbol, e.timestamp, 'mark').open:.8f}",
                }
                for e in events
            ]
        )

    app.router.add_get("/fapi/v1/exchangeInfo", exchange_info)
    app.router.add_get("/dapi/v1/exchangeInfo", coin_margined_exchange_info)
    for path, price in KLINES.items():
        app.router.add_get(path, klines_of(price))
    app.router.add_get("/fapi/v1/fundingRate", funding_rate)
