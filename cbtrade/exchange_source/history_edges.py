"""Where a series' history starts (a pair's listing) or ends (a market that stopped trading),
found with a few exchange calls instead of a walk through years of empty windows.

Two strategies, by what the exchange allows:

- **Probes** (exchanges that answer a window of any width with at most ``limit`` candles,
  as Crypto.com and Binance do): a bisection over time with probes of one candle each. A
  probe of ``[a, b)`` answers one candle of the window or none; whichever end of an
  over-full window the exchange answers from, a candle proves the window is not empty. An
  exchange that answers from the near end (Binance's earliest-first) names the edge at
  once; the first answer is checked for that, so such exchanges need about three calls.
  Others need about ``log2(span / (max per call))`` probes: 15 for ten years of 5m candles.
- **Coarse scan** (exchanges that reject a window of more than one call's candles, as
  Coinbase's documentation says it does): whole calls of the coarsest timeframe the
  exchange offers (300 days of 1d candles a call) find the edge's day, then calls of the
  series' own timeframe find the candle.

A transient empty answer would move the edge past real candles, and they would never be
fetched, so no conclusion rests on one empty answer: a search believes each empty answer
once, then asks about everything it concluded is empty once more (twice if that answer is
empty too), and starts again from a candle if one turns up. An answer with a candle is
believed at once. Both strategies end with one ordinary call of the series, whose candles
the caller stores: the call window that holds the edge. A search stops at its deadline and
gives back what it verified, so a later one goes on from there.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from cbtrade.models import Candle, TimeRange
from cbtrade.timeframes import align_down, align_up

GENESIS_MS = 1_230_940_800_000
"""2009-01-03T00:00:00Z, Bitcoin's genesis block: no exchange has a candle before it, so a
search never asks about earlier times."""

WindowFetch = Callable[[int, int], Awaitable[list[Candle]]]
"""One exchange call for ``[start, end)`` (at most one call's candles), its candles ascending."""
WindowProbe = Callable[[int, int], Awaitable[int | None]]
"""One exchange call asking for one candle of ``[start, end)``: its open time, or None."""


class EdgeWindow(NamedTuple):
    """One exchange call's window at the edge of a series' history, and its candles.

    For the start of a history: no candle opens in ``[search start, window.start)`` and
    ``candles`` holds the first ones. For the end: no candle opens in ``[window.end, search
    end)`` and ``candles`` holds the last ones. With no candles the window is empty and
    marks how far the search verified: the search end (start) when the searched range holds
    no candle, or where the exchange's answers contradicted each other.
    """

    window: TimeRange
    candles: list[Candle]
    calls: int
    """Exchange calls the search made."""


class CoarseSeries(NamedTuple):
    """The coarse timeframe a coarse scan walks: its length, one call's span, and a fetch."""

    timeframe_ms: int
    call_span_ms: int
    fetch: WindowFetch


class HistoryEdgeFinder:
    """Finds the first or the last call window of a series that holds candles."""

    def __init__(
        self,
        *,
        timeframe_ms: int,
        call_span_ms: int,
        fetch: WindowFetch,
        probe: WindowProbe | None,
        coarse: CoarseSeries | None = None,
        deadline: float | None = None,
    ) -> None:
        if probe is None and coarse is None:
            raise ValueError("an edge search needs probes or a coarse timeframe")
        self._timeframe_ms = timeframe_ms
        self._call_span_ms = call_span_ms
        self._fetch = fetch
        self._probe = probe
        self._coarse = coarse
        self._deadline = deadline
        self._calls = 0
        self._empty_once: set[TimeRange] = set()
        """Windows this search was answered empty once."""

    async def find(self, start: int, end: int, *, first: bool) -> EdgeWindow:
        """The call window holding the first (``first=True``) or last candle in
        ``[start, end)``; both aligned to the timeframe."""
        self._calls = 0
        self._empty_once.clear()
        start = max(start, align_up(GENESIS_MS, self._timeframe_ms))
        if end <= start:
            return EdgeWindow(TimeRange(end, end), [], 0)
        if self._probe is not None:
            low, high = await self._bisect(start, end, first=first)
        else:
            low, high = await self._coarse_scan(start, end, first=first)
        return await self._edge_call(low, high, start, end, first=first)

    # -- strategies -------------------------------------------------------------------------

    async def _bisect(self, start: int, end: int, *, first: bool) -> tuple[int, int]:
        """Narrow ``[start, end)`` to at most one call span that holds the edge candle, or to
        an empty range if there is none: no candle opens between the range's edge side and
        the returned range."""
        tf = self._timeframe_ms
        low, high = start, end
        found = await self._verified_probe(low, high)
        if found is None:
            return (high, high) if first else (low, low)
        checked_near_end = False
        while True:
            while True:
                if first:
                    high = min(high, found + tf)
                else:
                    low = max(low, found)
                if high - low <= self._call_span_ms or self._expired():
                    break
                if not checked_near_end:
                    # An exchange that answers from the edge's end may have named the edge.
                    checked_near_end = True
                    window = TimeRange(low, found) if first else TimeRange(found + tf, high)
                else:
                    middle = low + align_down((high - low) // 2, tf)
                    window = TimeRange(low, middle) if first else TimeRange(middle, high)
                candle = await self._probe_once(window)
                if candle is not None:
                    found = candle
                elif first:
                    low = window.end
                else:
                    high = window.start
            # Empty answers were believed once each; the conclusion is checked once more.
            outside = TimeRange(start, low) if first else TimeRange(high, end)
            if outside.end <= outside.start:
                break
            candle = await self._verified_probe(outside.start, outside.end)
            if candle is None:
                break
            found, low, high = candle, start, end
        if self._expired() and high - low > self._call_span_ms:
            # Give back what is verified; a later search goes on from there.
            return (low, low) if first else (high, high)
        return low, high

    async def _coarse_scan(self, start: int, end: int, *, first: bool) -> tuple[int, int]:
        """Walk whole calls of the coarse timeframe from the edge's side until one holds a
        candle; the edge lies in that coarse candle's period."""
        assert self._coarse is not None
        coarse_ms, span, fetch = self._coarse
        first_coarse, last_coarse = align_down(start, coarse_ms), align_up(end, coarse_ms)
        windows = [
            TimeRange(at, min(at + span, last_coarse))
            for at in range(first_coarse, last_coarse, span)
        ]
        if not first:
            windows.reverse()

        def inside(candles: list[Candle]) -> list[Candle]:
            return [c for c in candles if c.timestamp + coarse_ms > start and c.timestamp < end]

        hit: tuple[int, list[Candle]] | None = None
        for index, window in enumerate(windows):
            if self._expired():
                verified = max(start, window.start) if first else min(end, window.end)
                return verified, verified
            self._calls += 1
            candles = inside(await fetch(window.start, window.end))
            if candles:
                hit = index, candles
                break
        if hit is None:
            # Believed empty once each; the window nearest the far end is asked again.
            index = len(windows) - 1
            candles = inside(await self._verified_fetch(fetch, *windows[index])) if windows else []
            if not candles:
                return (end, end) if first else (start, start)
            hit = index, candles
        index, candles = hit
        # The window before the hit was believed empty once: check it, and so on back.
        while index > 0:
            earlier = inside(await self._verified_fetch(fetch, *windows[index - 1]))
            if not earlier:
                break
            index, candles = index - 1, earlier
        edge = candles[0] if first else candles[-1]
        return (
            max(start, align_down(edge.timestamp, self._timeframe_ms)),
            min(end, align_up(edge.timestamp + coarse_ms, self._timeframe_ms)),
        )

    async def _edge_call(
        self, low: int, high: int, start: int, end: int, *, first: bool
    ) -> EdgeWindow:
        """Ordinary calls of the series from the edge's side of ``[low, high)`` until one holds
        candles (the bisection leaves one call; the coarse scan one coarse period)."""
        span = self._call_span_ms
        if first:
            windows = [TimeRange(at, min(at + span, end)) for at in range(low, high, span)]
        else:
            windows = [TimeRange(max(at - span, start), at) for at in range(high, low, -span)]
        for window in windows:
            candles = await self._verified_fetch(self._fetch, window.start, window.end)
            if candles:
                return EdgeWindow(window, candles, self._calls)
        # Nothing where a probe saw a candle: only what was verified holds.
        edge = low if first else high
        return EdgeWindow(TimeRange(edge, edge), [], self._calls)

    def _expired(self) -> bool:
        """Past the deadline, once at least one call was made."""
        return self._deadline is not None and self._calls > 0 and time.monotonic() >= self._deadline

    # -- calls ------------------------------------------------------------------------------

    async def _probe_once(self, window: TimeRange) -> int | None:
        assert self._probe is not None
        self._calls += 1
        candle = await self._probe(window.start, window.end)
        if candle is None:
            self._empty_once.add(window)
        return candle

    async def _verified_probe(self, start: int, end: int) -> int | None:
        """A candle of ``[start, end)``, or None once two answers (this search's) were empty."""
        window = TimeRange(start, end)
        for _ in range(1 if window in self._empty_once else 2):
            candle = await self._probe_once(window)
            if candle is not None:
                return candle
        return None

    async def _verified_fetch(self, fetch: WindowFetch, start: int, end: int) -> list[Candle]:
        for _ in range(2):
            self._calls += 1
            candles = await fetch(start, end)
            if candles:
                return candles
        return []
