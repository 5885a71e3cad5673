"""The simulated exchanges' state: markets, deterministic candles, faults and counters.

Candles are a pure function of (exchange, symbol, timeframe, open time): prices have two
decimals and volumes four, so they survive the exchanges' string encodings exactly. A market
has no candle before its listing, none from its delisting on, and none in every
``quiet_every``-th interval (no trades). The forming candle (``t <= now < t + timeframe``)
is served, as real exchanges do.
"""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Literal, NamedTuple

from cbtrade.models import Candle
from cbtrade.timeframes import timeframe_to_ms

WindowStyle = Literal["latest", "earliest"]
LISTED_2024 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
LISTED_FEB_2024 = 1_706_745_600_000  # 2024-02-01T00:00:00Z
BAN_WINDOW_SECONDS = 60.0


class SimulatedMarket(NamedTuple):
    """One listed market of a simulated exchange. From ``delisted_at`` on it has no candles
    and the markets endpoint marks it as not trading (ccxt's ``active`` is False)."""

    symbol: str
    listed_at: int
    quiet_every: int = 97
    delisted_at: int | None = None

    @property
    def trading(self) -> bool:
        """Whether the market still trades now."""
        return self.delisted_at is None or self.delisted_at > now_ms()


DEFAULT_MARKETS: dict[str, list[SimulatedMarket]] = {
    "cryptocom": [
        SimulatedMarket("BTC/USD", LISTED_2024),
        SimulatedMarket("ETH/USD", LISTED_FEB_2024),
    ],
    "binance": [
        SimulatedMarket("BTC/USDT", LISTED_2024),
        SimulatedMarket("ETH/USDT", LISTED_FEB_2024),
    ],
    "kraken": [SimulatedMarket("BTC/USD", LISTED_2024)],
    "coinbase": [
        SimulatedMarket("BTC/USD", LISTED_2024),
        SimulatedMarket("ETH/USD", LISTED_FEB_2024),
    ],
}
MAX_PER_CALL = {"cryptocom": 300, "binance": 1000, "kraken": 720, "coinbase": 300}
DEFAULT_STYLE: dict[str, WindowStyle] = {
    "cryptocom": "latest",
    "binance": "earliest",
    "kraken": "latest",
    "coinbase": "latest",
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def candle_at(exchange: str, symbol: str, timestamp: int) -> Candle:
    """The simulated candle that opens at ``timestamp``."""
    seed = zlib.crc32(f"{exchange}:{symbol}:{timestamp}".encode())
    base = 100 + (seed % 50_000) / 100
    spread = (seed >> 16) % 500 / 100
    open_ = round(base, 2)
    close = round(base + spread / 2, 2)
    return Candle(
        timestamp,
        open_,
        round(base + spread, 2),
        round(base - spread / 4, 2),
        close,
        round((seed % 9_999_991) / 10_000, 4),
    )


@dataclass
class ExchangeState:
    """Mutable per-exchange state: markets, window style, faults, counters."""

    markets: dict[str, SimulatedMarket]
    style: WindowStyle
    faults: list[int] = field(default_factory=list)
    outage: int | None = None
    delay: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    empty_every: int | None = None
    """Every n-th answered candle request has no rows, or None."""
    answered_since_set: int = 0
    empty_answers: int = 0
    emptied: set[str] = field(default_factory=set)
    """Requests answered empty once: asked again, they are answered (the replica caught up)."""


class SimulatorState:
    """Everything the simulated exchanges know; shared by the HTTP handlers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.exchanges: dict[str, ExchangeState] = {}
        self.request_times: list[float] = []
        self.rate_limit_per_second: float | None = None
        self.ban_after_rejections: int | None = None
        """Like Binance's IP ban: once this many requests were answered 429 within
        BAN_WINDOW_SECONDS, every request answers 418 until reset."""
        self.rejection_times: list[float] = []
        self.rejected = 0
        self.bans = 0
        self.banned = False
        self.gateway_faults: list[int] = []
        """Statuses the next requests to any exchange get from the gateway in front of it."""
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.exchanges = {
                name: ExchangeState({m.symbol: m for m in markets}, DEFAULT_STYLE[name])
                for name, markets in DEFAULT_MARKETS.items()
            }
            self.request_times = []
            self.rate_limit_per_second = None
            self.ban_after_rejections = None
            self.rejection_times = []
            self.rejected = 0
            self.bans = 0
            self.banned = False
            self.gateway_faults = []

    def has_candle(self, exchange: str, symbol: str, timeframe_ms: int, timestamp: int) -> bool:
        market = self.exchanges[exchange].markets.get(symbol)
        if market is None or timestamp < market.listed_at:
            return False
        if market.delisted_at is not None and timestamp >= market.delisted_at:
            return False
        return (timestamp // timeframe_ms) % market.quiet_every != 0

    def candles(
        self, exchange: str, symbol: str, timeframe: str, first: int, last: int
    ) -> list[Candle]:
        """Every candle (forming one included) with ``first <= t <= last``, up to now."""
        return list(self._walk(exchange, symbol, timeframe, first, last, backwards=False))

    def window(
        self, exchange: str, symbol: str, timeframe: str, first: int, last: int, count: int
    ) -> list[Candle]:
        """At most ``count`` candles of ``[first, last]``: an over-full window is answered
        from the end the exchange's style says. Only the answered end is generated, so an
        open-ended window (no end, or from the epoch) stays cheap."""
        backwards = self.exchanges[exchange].style == "latest"
        walk = self._walk(exchange, symbol, timeframe, first, last, backwards=backwards)
        answer = list(islice(walk, max(count, 0)))
        return answer[::-1] if backwards else answer

    def _walk(
        self, exchange: str, symbol: str, timeframe: str, first: int, last: int, *, backwards: bool
    ) -> Iterator[Candle]:
        step = timeframe_to_ms(timeframe)
        market = self.exchanges[exchange].markets.get(symbol)
        if market is None:
            return
        start = -(-max(first, market.listed_at) // step) * step
        stop = min(last, now_ms())
        if market.delisted_at is not None:
            stop = min(stop, market.delisted_at - 1)
        stop -= stop % step
        stamps = range(stop, start - 1, -step) if backwards else range(start, stop + 1, step)
        for t in stamps:
            if self.has_candle(exchange, symbol, step, t):
                yield candle_at(exchange, symbol, t)

    def gateway_fault(self) -> int | None:
        """The status the gateway fails the next request with, if a fault applies."""
        with self.lock:
            return self.gateway_faults.pop(0) if self.gateway_faults else None

    def answer_empty(self, exchange: str, request: str) -> bool:
        """Count a candle request about to be answered (admitted and valid); whether to
        answer it with no rows, as every ``empty_every``-th one is unless the same
        ``request`` (path and query) was answered empty before."""
        state = self.exchanges[exchange]
        with self.lock:
            if state.empty_every is None:
                return False
            state.answered_since_set += 1
            if state.answered_since_set % state.empty_every or request in state.emptied:
                return False
            state.emptied.add(request)
            state.empty_answers += 1
            return True

    async def admit(self, exchange: str, endpoint: str) -> int | None:
        """Count a request; the status to fail it with, if a fault applies."""
        state = self.exchanges[exchange]
        with self.lock:
            state.counts[endpoint] += 1
            status = 418 if self.banned else state.outage
            if status is None and state.faults:
                status = state.faults.pop(0)
            if status is None and self.rate_limit_per_second is not None:
                moment = time.monotonic()
                self.request_times = [t for t in self.request_times if moment - t < 1.0]
                if len(self.request_times) >= self.rate_limit_per_second:
                    status = 429
                    self._reject(moment)
                else:
                    self.request_times.append(moment)
            delay = state.delay
        if delay:
            await asyncio.sleep(delay)
        return status

    def _reject(self, moment: float) -> None:
        """Count a request over the rate limit (the lock held); ban once too many were."""
        self.rejected += 1
        if self.ban_after_rejections is None:
            return
        self.rejection_times = [
            t for t in self.rejection_times if moment - t < BAN_WINDOW_SECONDS
        ] + [moment]
        if len(self.rejection_times) >= self.ban_after_rejections:
            self.banned = True
            self.bans += 1
