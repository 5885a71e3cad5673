"""HistoryEdgeFinder against a fake market answering in both window styles."""

from __future__ import annotations

import math
import time

import pytest

from cbtrade.exchange_source.history_edges import (
    GENESIS_MS,
    CoarseSeries,
    EdgeWindow,
    HistoryEdgeFinder,
)
from cbtrade.models import Candle

MINUTE = 60_000
FIVE_MINUTES = 5 * MINUTE
DAY = 86_400_000
PER_CALL = 300
SPAN = PER_CALL * FIVE_MINUTES
LISTED = 1_704_067_200_000 + 7 * FIVE_MINUTES  # 2024-01-01T00:35Z
ENDED = LISTED + 40 * DAY + 13 * FIVE_MINUTES
NOW = 1_767_225_600_000  # 2026-01-01


class FakeMarket:
    """Candles every 5 minutes from LISTED to ENDED, but in every 7th interval; answers
    over-full probe windows from the end its style says, and may empty some answers once."""

    def __init__(self, style: str, *, empty_every: int | None = None) -> None:
        self.style = style
        self.empty_every = empty_every
        self.calls = 0
        self.asked: set[tuple[str, int, int]] = set()

    def stamps(self, start: int, end: int, step: int) -> list[int]:
        first = max(start, LISTED)
        first = -(-first // step) * step
        last = min(end, ENDED)
        return [
            t
            for t in range(first, last, step)
            if step != FIVE_MINUTES or (t // FIVE_MINUTES) % 7 != 0
        ]

    def _emptied(self, kind: str, start: int, end: int) -> bool:
        self.calls += 1
        key = (kind, start, end)
        first_ask = key not in self.asked
        self.asked.add(key)
        return bool(self.empty_every and first_ask and self.calls % self.empty_every == 0)

    async def probe(self, start: int, end: int) -> int | None:
        if self._emptied("probe", start, end):
            return None
        stamps = self.stamps(start, end, FIVE_MINUTES)
        if not stamps:
            return None
        return stamps[0] if self.style == "earliest" else stamps[-1]

    async def fetch(self, start: int, end: int) -> list[Candle]:
        assert end - start <= SPAN
        if self._emptied("fetch", start, end):
            return []
        return [Candle(t, 1.0, 1.0, 1.0, 1.0, 1.0) for t in self.stamps(start, end, FIVE_MINUTES)]

    async def fetch_days(self, start: int, end: int) -> list[Candle]:
        assert end - start <= PER_CALL * DAY
        if self._emptied("days", start, end):
            return []
        return [
            Candle(t, 1.0, 1.0, 1.0, 1.0, 1.0)
            for t in range(-(-start // DAY) * DAY, end, DAY)
            if t + DAY > LISTED and t < ENDED
        ]


def finder(market: FakeMarket, *, coarse: bool = False, deadline: float | None = None):  # type: ignore[no-untyped-def]
    return HistoryEdgeFinder(
        timeframe_ms=FIVE_MINUTES,
        call_span_ms=SPAN,
        fetch=market.fetch,
        probe=None if coarse else market.probe,
        coarse=CoarseSeries(DAY, PER_CALL * DAY, market.fetch_days) if coarse else None,
        deadline=deadline,
    )


FIRST = next(t for t in range(LISTED, LISTED + DAY, FIVE_MINUTES) if (t // FIVE_MINUTES) % 7)
LAST = max(t for t in range(ENDED - DAY, ENDED, FIVE_MINUTES) if (t // FIVE_MINUTES) % 7)
PROBES_LATEST = math.ceil(math.log2((NOW - GENESIS_MS) / SPAN)) + 6


def check_first(edge: EdgeWindow) -> None:
    assert edge.candles[0].timestamp == FIRST
    assert edge.window.start <= FIRST < edge.window.end
    assert edge.window.end - edge.window.start <= SPAN


@pytest.mark.parametrize(("style", "most_calls"), [("earliest", 4), ("latest", PROBES_LATEST)])
async def test_the_first_candle_is_found_with_few_calls(style: str, most_calls: int) -> None:
    market = FakeMarket(style)
    edge = await finder(market).find(0, NOW, first=True)
    check_first(edge)
    assert edge.calls == market.calls <= most_calls


@pytest.mark.parametrize(("style", "most_calls"), [("earliest", PROBES_LATEST), ("latest", 4)])
async def test_the_last_candle_of_an_ended_market_is_found_with_few_calls(
    style: str, most_calls: int
) -> None:
    market = FakeMarket(style)
    edge = await finder(market).find(0, NOW, first=False)
    assert edge.candles[-1].timestamp == LAST
    assert edge.window.start <= LAST < edge.window.end
    assert market.calls <= most_calls


@pytest.mark.parametrize("style", ["earliest", "latest"])
@pytest.mark.parametrize("first", [True, False])
async def test_an_empty_answer_is_asked_again_before_it_is_believed(
    style: str, first: bool
) -> None:
    for empty_every in (2, 3, 5):
        market = FakeMarket(style, empty_every=empty_every)
        edge = await finder(market).find(0, NOW, first=first)
        if first:
            check_first(edge)
        else:
            assert edge.candles[-1].timestamp == LAST


async def test_a_range_without_candles_says_so() -> None:
    market = FakeMarket("latest")
    before = await finder(market).find(0, LISTED - 7 * FIVE_MINUTES, first=True)
    assert before.candles == []
    assert before.window.start == LISTED - 7 * FIVE_MINUTES
    after = await finder(market).find(ENDED + DAY, NOW, first=False)
    assert after.candles == []
    assert after.window.end == ENDED + DAY


async def test_nothing_before_bitcoin_is_asked_about() -> None:
    market = FakeMarket("latest")
    edge = await finder(market).find(0, GENESIS_MS, first=True)
    assert edge.calls == 0
    assert edge.candles == []


async def test_the_coarse_scan_finds_the_first_and_last_candle_with_whole_calls() -> None:
    market = FakeMarket("latest")
    edge = await finder(market, coarse=True).find(0, NOW, first=True)
    check_first(edge)
    days_calls = math.ceil((NOW - GENESIS_MS) / (PER_CALL * DAY))
    assert market.calls <= days_calls + 1
    market = FakeMarket("latest")
    edge = await finder(market, coarse=True).find(0, NOW, first=False)
    assert edge.candles[-1].timestamp == LAST


async def test_past_the_deadline_the_search_gives_back_what_it_verified() -> None:
    market = FakeMarket("latest")
    edge = await finder(market, deadline=time.monotonic() - 1).find(0, NOW, first=True)
    # One probe is made (progress), then the search stops with nothing wrongly skipped.
    assert edge.candles == []
    assert edge.window.start <= FIRST
    assert market.calls == 1
