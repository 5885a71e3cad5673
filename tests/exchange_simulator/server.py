"""ExchangeSimulator: the simulated exchanges on one loopback port, in a background thread."""

from __future__ import annotations

import asyncio
import logging
import threading
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from cbtrade.models import Candle
from tests.exchange_simulator import binance, binance_futures, coinbase, cryptocom, kraken
from tests.exchange_simulator.core import (
    MAX_PER_CALL,
    FundingEvent,
    PriceType,
    SimulatedMarket,
    SimulatorState,
    WindowStyle,
    candle_at,
    funding_rate_at,
    funding_times,
    now_ms,
)
from tests.exchange_simulator.grids import grid

WIRE_FORMATS = (cryptocom, binance, binance_futures, kraken, coinbase)
logger = logging.getLogger(__name__)


def gateway(state: SimulatorState) -> Any:
    """The load balancer in front of the APIs: when told to fail, it answers its own HTML
    page (nginx's), not the exchange's JSON error, as a real gateway or CDN does."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        status = state.gateway_fault()
        if status is None:
            response: web.StreamResponse = await handler(request)
            return response
        try:
            title = f"{status} {HTTPStatus(status).phrase}"
        except ValueError:  # a CDN's own status, e.g. Cloudflare's 524
            title = f"{status} Origin Error"
        page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        return web.Response(status=status, text=page, content_type="text/html")

    return middleware


async def unknown_path(request: web.Request) -> web.Response:
    """Any path no wire format serves: logged, so a new ccxt request shows up at once."""
    logger.warning("exchange simulator: unknown path %s %s", request.method, request.path_qs)
    return web.json_response({"error": f"unknown path {request.path}"}, status=404)


class ExchangeSimulator:
    """Crypto.com, Binance, Kraken and Coinbase public REST APIs, simulated, with faults
    and counters."""

    def __init__(self) -> None:
        self._state = SimulatorState()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # Lifecycle

    def start(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve on ``host:port`` (0: a free port) from a background thread."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(host, port))
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=run, name="exchange-simulator", daemon=True)
        self._thread.start()
        ready.wait(timeout=20)
        if failure:
            raise RuntimeError("the exchange simulator did not start") from failure[0]

    async def _serve(self, host: str, port: int) -> None:
        app = web.Application(middlewares=[gateway(self._state)])
        for wire_format in WIRE_FORMATS:
            wire_format.add_routes(app, self._state)
        app.router.add_route("*", "/{tail:.*}", unknown_path)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server: Any = site._server
        self._port = server.sockets[0].getsockname()[1]
        self._host = host

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=20)
            self._loop = None

    @property
    def origin(self) -> str:
        """The simulator's origin, e.g. ``http://127.0.0.1:9000``."""
        return f"http://{self._host}:{self._port}"

    # Configuration

    def reset(self) -> None:
        """Counters, faults, empty answers, styles, rate limit, ban and markets back to their
        defaults."""
        self._state.reset()

    def set_markets(self, exchange: str, markets: list[SimulatedMarket]) -> None:
        self._state.exchanges[exchange].markets = {m.symbol: m for m in markets}

    def set_window_style(self, exchange: str, style: WindowStyle) -> None:
        self._state.exchanges[exchange].style = style

    def inject_faults(self, exchange: str, *, status: int, count: int) -> None:
        """The next ``count`` requests to ``exchange`` answer ``status``."""
        self._state.exchanges[exchange].faults.extend([status] * count)

    def inject_gateway_faults(self, *, status: int, count: int) -> None:
        """The next ``count`` requests, to any exchange, get ``status`` with a gateway's HTML
        page; they never reach the exchange (not counted)."""
        with self._state.lock:
            self._state.gateway_faults.extend([status] * count)

    def set_outage(self, exchange: str, status: int | None) -> None:
        """Every request answers ``status`` until cleared with None."""
        self._state.exchanges[exchange].outage = status

    def set_delay(self, exchange: str, seconds: float) -> None:
        """Every request to ``exchange`` waits ``seconds`` before it is answered; the others
        are served meanwhile."""
        self._state.exchanges[exchange].delay = seconds

    def answer_empty_every(self, exchange: str, n: int | None) -> None:
        """From now on every ``n``-th candle request to ``exchange`` that would be answered
        (not faulted, rate-limited or refused) answers in the normal format with no rows, as
        a lagging replica would; None stops it. A request asked again after an empty answer
        is answered (the replica caught up), so a client that re-asks an empty window once
        always gets its candles."""
        if n is not None and n < 1:
            raise ValueError(f"n must be at least 1 or None, not {n}")
        state = self._state.exchanges[exchange]
        with self._state.lock:
            state.empty_every = n
            state.answered_since_set = 0

    @property
    def rate_limit_per_second(self) -> float | None:
        return self._state.rate_limit_per_second

    @rate_limit_per_second.setter
    def rate_limit_per_second(self, value: float | None) -> None:
        self._state.rate_limit_per_second = value

    @property
    def ban_after_rejections(self) -> int | None:
        """Like Binance: once this many requests were answered 429 (over
        ``rate_limit_per_second``) within 60 s, every request answers 418 until reset."""
        return self._state.ban_after_rejections

    @ban_after_rejections.setter
    def ban_after_rejections(self, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"ban_after_rejections must be at least 1 or None, not {value}")
        with self._state.lock:
            self._state.ban_after_rejections = value

    # Observation

    def candle_requests(self, exchange: str) -> int:
        return self._state.exchanges[exchange].counts["candles"]

    def funding_requests(self, exchange: str) -> int:
        return self._state.exchanges[exchange].counts["funding"]

    def market_requests(self, exchange: str) -> int:
        return self._state.exchanges[exchange].counts["markets"]

    def rejected_requests(self) -> int:
        """Requests to any exchange answered 429 over the rate limit since the last reset."""
        return self._state.rejected

    @property
    def bans(self) -> int:
        """How many times the simulator banned (``ban_after_rejections``) since the last reset."""
        return self._state.bans

    @property
    def banned(self) -> bool:
        """Whether every request now answers 418."""
        return self._state.banned

    def empty_answers(self, exchange: str) -> int:
        """How many candle requests ``answer_empty_every`` emptied since the last reset."""
        return self._state.exchanges[exchange].empty_answers

    def max_per_call(self, exchange: str) -> int:
        return MAX_PER_CALL[exchange]

    def truth(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start: int,
        end: int,
        *,
        price: PriceType = "trade",
        now: int | None = None,
    ) -> list[Candle]:
        """Exactly the closed ``price`` candles (closed by ``now``) the simulated exchange has
        opening in ``[start, end)``, on the exchange's grid of ``timeframe``."""
        moment = now_ms() if now is None else now
        market = self._state.series_market(exchange, symbol, price)
        if market is None:
            return []
        candle_grid = grid(exchange, timeframe)
        # Only the market's life up to now is walked, so a window from the epoch stays cheap.
        last = min(end, moment) - 1
        if market.ends_at is not None:
            last = min(last, market.ends_at - 1)
        return [
            candle_at(exchange, symbol, t, price)
            for t in candle_grid.opens(max(start, market.listed_at), last)
            if candle_grid.close_time(t) <= moment
            and self._state.has_candle(exchange, symbol, timeframe, t, price)
        ]

    def funding_truth(
        self, exchange: str, symbol: str, start: int, end: int, *, now: int | None = None
    ) -> list[FundingEvent]:
        """Every funding event the simulated exchange has published with ``start <= t < end``
        and ``t <= now``, oldest first."""
        market = self._state.exchanges[exchange].markets.get(symbol)
        if market is None:
            return []
        last = end - 1 if now is None else min(end - 1, now)
        return [
            FundingEvent(t, funding_rate_at(exchange, symbol, t))
            for t in funding_times(market, start, last)
        ]


def point_ccxt_at(exchange: Any, origin: str) -> None:
    """Send every URL of a ccxt exchange object's API to ``origin``, keeping paths."""

    def rewrite(urls: Any) -> Any:
        if isinstance(urls, str):
            parts, target = urlsplit(urls), urlsplit(origin)
            return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, ""))
        if isinstance(urls, dict):
            return {key: rewrite(value) for key, value in urls.items()}
        return urls

    exchange.urls["api"] = rewrite(exchange.urls["api"])
