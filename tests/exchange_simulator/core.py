"""The simulated exchanges' state: markets, deterministic candles and funding, faults and
counters.

Candles are a pure function of (exchange, symbol, price type, open time): trade, mark and
index prices have two decimals and trade volumes four, premium indexes eight decimals around
0, so they survive the exchanges' string encodings exactly. A market has no candle before its
listing, none from its end (delisting, or a dated future's expiry) on, and none in every
``quiet_every``-th period of its grid (no trades). Candles open on the exchange's grid of the
timeframe (``grids``): an exchange's calendar timeframes (weeks, months) have its own; the
first candle is the first to open at or after the listing. The forming candle
(``t <= now < close``) is served, as real exchanges do. Funding events of a perpetual are a
pure function of (exchange, symbol, funding time), at the times its funding schedule says,
from its listing up to now.
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
from tests.exchange_simulator.grids import grid

WindowStyle = Literal["latest", "earliest"]
MarketKind = Literal["spot", "swap", "future"]
PriceType = Literal["trade", "mark", "index", "premiumIndex"]
PRICE_TYPES: tuple[PriceType, ...] = ("trade", "mark", "index", "premiumIndex")
LISTED_2024 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
LISTED_FEB_2024 = 1_706_745_600_000  # 2024-02-01T00:00:00Z
FEB_15_2024 = 1_707_955_200_000  # 2024-02-15T00:00:00Z
MAR_2024 = 1_709_251_200_000  # 2024-03-01T00:00:00Z
EXPIRY_240329 = 1_711_699_200_000  # 2024-03-29T08:00:00Z, Binance's quarterly delivery time
HOUR = 3_600_000
BAN_WINDOW_SECONDS = 60.0

FundingSchedule = tuple[tuple[int, int], ...]
"""``(from_ms, every_ms)`` steps: from ``from_ms`` on (until the next step's), funding is at
every multiple of ``every_ms`` since the epoch."""


class SimulatedMarket(NamedTuple):
    """One listed market of a simulated exchange. Its ccxt symbol says its kind: ``BTC/USDT``
    spot, ``BTC/USDT:USDT`` perpetual swap, ``BTC/USDT:USDT-240329`` dated future (whose
    ``expiry`` must be that day's delivery time). From its end (``delisted_at`` or
    ``expiry``, the earlier) on it has no candles nor funding and the markets endpoint marks
    it as not trading (ccxt's ``active`` is False). A swap pays funding on ``funding``."""

    symbol: str
    listed_at: int
    quiet_every: int = 97
    delisted_at: int | None = None
    expiry: int | None = None
    funding: FundingSchedule = ()

    @property
    def kind(self) -> MarketKind:
        """spot, swap or future, as the ccxt symbol says."""
        if ":" not in self.symbol:
            return "spot"
        return "future" if "-" in self.symbol.split(":", 1)[1] else "swap"

    @property
    def pair(self) -> str:
        """``BASE/QUOTE``: what an index price is of."""
        return self.symbol.split(":", 1)[0]

    @property
    def ends_at(self) -> int | None:
        """When the market stops trading: its delisting or expiry, the earlier; or None."""
        ends = [t for t in (self.delisted_at, self.expiry) if t is not None]
        return min(ends) if ends else None

    @property
    def trading(self) -> bool:
        """Whether the market still trades now."""
        return self.ends_at is None or self.ends_at > now_ms()


DEFAULT_MARKETS: dict[str, list[SimulatedMarket]] = {
    "cryptocom": [
        SimulatedMarket("BTC/USD", LISTED_2024),
        SimulatedMarket("ETH/USD", LISTED_FEB_2024),
        SimulatedMarket("BTC/USD:USD", LISTED_2024, funding=((LISTED_2024, HOUR),)),
    ],
    "binance": [
        SimulatedMarket("BTC/USDT", LISTED_2024),
        SimulatedMarket("ETH/USDT", LISTED_FEB_2024),
        SimulatedMarket(
            "BTC/USDT:USDT", LISTED_2024, funding=((LISTED_2024, 8 * HOUR), (MAR_2024, 4 * HOUR))
        ),
        SimulatedMarket(
            "ETH/USDT:USDT",
            LISTED_FEB_2024,
            funding=((LISTED_FEB_2024, 8 * HOUR), (FEB_15_2024, HOUR)),
        ),
        SimulatedMarket("BTC/USDT:USDT-240329", LISTED_2024, expiry=EXPIRY_240329),
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


def candle_at(exchange: str, symbol: str, timestamp: int, price: PriceType = "trade") -> Candle:
    """The simulated ``price`` candle that opens at ``timestamp``. Mark, index and premium
    index candles have no volume (Binance sends 0); an index is the pair's, whichever of its
    contracts names it."""
    if price == "trade":
        key = f"{exchange}:{symbol}:{timestamp}"
    elif price == "index":
        key = f"{exchange}:{symbol.split(':', 1)[0]}:index:{timestamp}"
    else:
        key = f"{exchange}:{symbol}:{price}:{timestamp}"
    seed = zlib.crc32(key.encode())
    if price == "premiumIndex":  # a small signed ratio, in units of 1e-8
        level, width = seed % 200_001 - 100_000, (seed >> 16) % 10_000
        unit = 100_000_000
        return Candle(
            timestamp,
            level / unit,
            (level + width) / unit,
            (level - width // 4) / unit,
            (level + width // 2) / unit,
            0.0,
        )
    base = 100 + (seed % 50_000) / 100
    spread = (seed >> 16) % 500 / 100
    return Candle(
        timestamp,
        round(base, 2),
        round(base + spread, 2),
        round(base - spread / 4, 2),
        round(base + spread / 2, 2),
        round((seed % 9_999_991) / 10_000, 4) if price == "trade" else 0.0,
    )


class FundingEvent(NamedTuple):
    """One funding settlement: when, and the rate paid (8 decimals)."""

    timestamp: int
    rate: float


def funding_rate_at(exchange: str, symbol: str, timestamp: int) -> float:
    """The simulated funding rate settled at ``timestamp``: -0.0001 to 0.0002."""
    seed = zlib.crc32(f"{exchange}:{symbol}:funding:{timestamp}".encode())
    return (seed % 30_001 - 10_000) / 100_000_000


def funding_times(
    market: SimulatedMarket, first: int, last: int, *, backwards: bool = False
) -> Iterator[int]:
    """The market's funding times with ``first <= t <= last``, from its listing, before its
    end and up to now, in time order (or backwards)."""
    if not market.funding:
        return
    low = max(first, market.listed_at)
    high = min(last, now_ms())
    if market.ends_at is not None:
        high = min(high, market.ends_at - 1)
    bounds = [start for start, _ in market.funding[1:]] + [high + 1]
    segments = [
        (max(low, start), min(high, following - 1), every)
        for (start, every), following in zip(market.funding, bounds, strict=True)
    ]
    for start, stop, every in reversed(segments) if backwards else segments:
        start = -(-start // every) * every
        stop -= stop % every
        yield from range(stop, start - 1, -every) if backwards else range(start, stop + 1, every)


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

    def series_market(
        self, exchange: str, symbol: str, price: PriceType = "trade"
    ) -> SimulatedMarket | None:
        """The market whose life bounds ``symbol``'s ``price`` candles: its own, but for an
        index, which is the pair's: from the first of the pair's contracts' listings to the
        last one's end."""
        markets = self.exchanges[exchange].markets
        market = markets.get(symbol)
        if market is None or price != "index":
            return market
        sharing = [m for m in markets.values() if m.kind != "spot" and m.pair == market.pair]
        ends = [m.ends_at for m in sharing or [market]]
        return market._replace(
            listed_at=min(m.listed_at for m in sharing or [market]),
            delisted_at=None if None in ends else max(t for t in ends if t is not None),
            expiry=None,
        )

    def has_candle(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        timestamp: int,
        price: PriceType = "trade",
    ) -> bool:
        """Whether the ``price`` candle opening at ``timestamp`` (on the grid) exists."""
        market = self.series_market(exchange, symbol, price)
        if market is None or timestamp < market.listed_at:
            return False
        if market.ends_at is not None and timestamp >= market.ends_at:
            return False
        return grid(exchange, timeframe).index(timestamp) % market.quiet_every != 0

    def candles(
        self, exchange: str, symbol: str, timeframe: str, first: int, last: int
    ) -> list[Candle]:
        """Every trade candle (forming one included) with ``first <= t <= last``, up to now."""
        return list(self._walk(exchange, symbol, timeframe, (first, last), "trade"))

    def window(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        first: int,
        last: int,
        count: int,
        price: PriceType = "trade",
    ) -> list[Candle]:
        """At most ``count`` candles of ``[first, last]``: an over-full window is answered
        from the end the exchange's style says. Only the answered end is generated, so an
        open-ended window (no end, or from the epoch) stays cheap."""
        backwards = self.exchanges[exchange].style == "latest"
        walk = self._walk(exchange, symbol, timeframe, (first, last), price, backwards=backwards)
        answer = list(islice(walk, max(count, 0)))
        return answer[::-1] if backwards else answer

    def _walk(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        span: tuple[int, int],
        price: PriceType,
        *,
        backwards: bool = False,
    ) -> Iterator[Candle]:
        """The ``price`` candles with ``first <= t <= last`` (``span``), up to now."""
        first, last = span
        market = self.series_market(exchange, symbol, price)
        if market is None:
            return
        stop = min(last, now_ms())
        if market.ends_at is not None:
            stop = min(stop, market.ends_at - 1)
        opens = grid(exchange, timeframe).opens(
            max(first, market.listed_at), stop, backwards=backwards
        )
        for t in opens:
            if self.has_candle(exchange, symbol, timeframe, t, price):
                yield candle_at(exchange, symbol, t, price)

    def funding(
        self, exchange: str, symbol: str, first: int, last: int, count: int, *, latest: bool
    ) -> list[FundingEvent]:
        """At most ``count`` funding events with ``first <= t <= last``, up to now, oldest
        first: the newest ``count`` if ``latest``, else the oldest."""
        market = self.exchanges[exchange].markets.get(symbol)
        if market is None:
            return []
        times = islice(funding_times(market, first, last, backwards=latest), max(count, 0))
        events = [FundingEvent(t, funding_rate_at(exchange, symbol, t)) for t in times]
        return events[::-1] if latest else events

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
