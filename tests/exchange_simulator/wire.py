"""What the exchanges' REST APIs have in common here: timeframe names and fault answers."""

from __future__ import annotations

from functools import cache

import ccxt
from aiohttp import web

from cbtrade.timeframes import TIMEFRAME_MS
from tests.exchange_simulator.grids import CALENDAR_GRIDS


@cache
def timeframe_names(exchange: str) -> dict[str, str]:
    """The exchange's own timeframe names (as ccxt sends them) -> the service's names: its
    fixed timeframes and the exchange's calendar ones."""
    names: dict[str, str] = getattr(ccxt, exchange)().timeframes
    served = TIMEFRAME_MS.keys() | CALENDAR_GRIDS.get(exchange, {}).keys()
    return {str(native): ours for ours, native in names.items() if ours in served}


def fault(status: int) -> web.Response:
    """A gateway-style failure: no exchange error body, so ccxt goes by the HTTP status."""
    reason = {429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "Unavailable")
    return web.Response(status=status, text=reason)
