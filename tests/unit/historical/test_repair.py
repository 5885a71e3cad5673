"""RangeRepairer against the fake exchange and the real local-disk storage."""

from __future__ import annotations

import logging

import pytest

from cbtrade.errors import (
    ExchangeUnavailableError,
    InvalidInputError,
    InvalidTimeframeError,
    UnknownExchangeError,
    UnknownSymbolError,
)
from cbtrade.historical.fetcher import HistoricalFetcher
from cbtrade.historical.repair import RangeRepairer, RepairResult
from cbtrade.models import Candle, TimeRange
from cbtrade.storage.interfaces import IStorageManager
from tests.unit.historical.conftest import (
    DAY,
    FIVE_MINUTES,
    LISTED_AT,
    NOW,
    FakeExchangeClient,
    fake_connector,
    fetch_candles,
    truth,
)

SERIES = ("fake", "BTC/USD", "5m")
START, END = LISTED_AT + DAY, LISTED_AT + 2 * DAY


class ExpectingExchange(FakeExchangeClient):
    """The fake exchange, remembering the ``expect_candles`` of each fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.expected: list[TimeRange | None] = []

    async def fetch_historical_data(
        self,
        symbol: str,
        timeframe: str,
        start: int,
        end: int,
        *,
        expect_candles: TimeRange | None = None,
    ) -> list[Candle]:
        self.expected.append(expect_candles)
        return await super().fetch_historical_data(symbol, timeframe, start, end)


@pytest.fixture
def exchange() -> ExpectingExchange:
    return ExpectingExchange()


@pytest.fixture
def repairer(
    fetcher: HistoricalFetcher, storage: IStorageManager, exchange: FakeExchangeClient
) -> RangeRepairer:
    return RangeRepairer(fetcher, storage, fake_connector(exchange), max_candles=1_000)


def wrong(candles: list[Candle]) -> list[Candle]:
    """The same slots with other prices, as a bad exchange answer would store them."""
    return [candle._replace(close=candle.close + 7.0) for candle in candles]


async def test_refetch_stores_exactly_the_exchanges_candles_and_their_coverage(
    repairer: RangeRepairer, fetcher: HistoricalFetcher, exchange: ExpectingExchange
) -> None:
    result = await repairer.refetch(*SERIES, START + 1, END)
    expected = truth(START, END)
    assert result == RepairResult(*SERIES, START + FIVE_MINUTES, END, 0, len(expected) - 1)
    assert exchange.expected == [TimeRange(START + FIVE_MINUTES, END)]  # empties asked twice
    calls = exchange.calls
    assert await fetch_candles(fetcher, *SERIES, START + 1, END) == expected[1:]
    assert exchange.calls == calls


async def test_refetch_replaces_wrong_and_missing_candles_and_nothing_outside(
    repairer: RangeRepairer, fetcher: HistoricalFetcher, storage: IStorageManager
) -> None:
    around = truth(START - DAY, END + DAY)
    bad = wrong(truth(START, START + DAY // 2))  # the second half of the range: missing
    outside = [c for c in around if not START <= c.timestamp < END]
    await storage.save_bulk_entries(
        *SERIES, sorted(outside + bad), covered=[TimeRange(START - DAY, END + DAY)]
    )
    result = await repairer.refetch(*SERIES, START, END)
    assert (result.candles_before, result.candles_after) == (len(bad), len(truth(START, END)))
    assert await fetch_candles(fetcher, *SERIES, START - DAY, END + DAY) == around


async def test_a_failed_fetch_changes_nothing(
    repairer: RangeRepairer, storage: IStorageManager, exchange: FakeExchangeClient
) -> None:
    bad = wrong(truth(START, END))
    await storage.save_bulk_entries(*SERIES, bad, covered=[TimeRange(START, END)])
    exchange.failure = ExchangeUnavailableError("down")
    with pytest.raises(ExchangeUnavailableError):
        await repairer.refetch(*SERIES, START, END)
    stored = await storage.get_range_with_coverage(*SERIES, START, END)
    assert (stored.candles.to_candles(), stored.covered) == (bad, [TimeRange(START, END)])


async def test_recent_empty_tail_is_not_recorded_as_covered_nor_asked_twice(
    repairer: RangeRepairer, storage: IStorageManager, exchange: ExpectingExchange
) -> None:
    closed = NOW - NOW % FIVE_MINUTES
    start, cutoff = closed - 4 * 3_600_000, closed - 3_600_000
    exchange.quiet_after = closed - 30 * 60_000  # the exchange publishes late
    result = await repairer.refetch(*SERIES, start, NOW + DAY)
    assert (result.start, result.end) == (start, closed)
    assert exchange.expected == [TimeRange(start, cutoff)]
    stored = await storage.get_range_with_coverage(*SERIES, start, closed)
    last = truth(start, exchange.quiet_after)[-1].timestamp
    assert stored.covered == [TimeRange(start, last + FIVE_MINUTES)]


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (END, START, "must be after start"),
        (START, START, "must be after start"),
        (START + 1, START + FIVE_MINUTES, "holds no closed 5m candle"),
        (NOW, NOW + DAY, "holds no closed 5m candle"),
        (START, START + 1_001 * FIVE_MINUTES, "at most 1000"),
        (-FIVE_MINUTES, START, "before 1970"),
    ],
)
async def test_bad_ranges_are_refused_before_any_exchange_call(
    repairer: RangeRepairer, exchange: FakeExchangeClient, start: int, end: int, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        await repairer.refetch(*SERIES, start, end)
    assert exchange.fetches == []


async def test_the_largest_range_is_accepted(repairer: RangeRepairer) -> None:
    result = await repairer.refetch(*SERIES, START, START + 1_000 * FIVE_MINUTES)
    assert result.candles_after == len(truth(START, START + 1_000 * FIVE_MINUTES))


@pytest.mark.parametrize(
    ("series", "error"),
    [
        (("fake", "NOPE/USD", "5m"), UnknownSymbolError),
        (("nope", "BTC/USD", "5m"), UnknownExchangeError),
        (("fake", "BTC/USD", "7m"), InvalidTimeframeError),
    ],
)
async def test_unknown_series_are_refused(
    repairer: RangeRepairer,
    exchange: FakeExchangeClient,
    series: tuple[str, str, str],
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        await repairer.refetch(*series, START, END)
    assert exchange.fetches == []


async def test_the_repair_is_logged_with_who_asked(
    repairer: RangeRepairer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="cbtrade.historical.repair"):
        await repairer.refetch(*SERIES, START, END, principal="api-key:abc")
    [record] = [r for r in caplog.records if r.__dict__.get("event") == "history.repair"]
    fields = {key: record.__dict__[key] for key in ("exchange", "symbol", "timeframe")}
    assert fields == {"exchange": "fake", "symbol": "BTC/USD", "timeframe": "5m"}
    assert (record.__dict__["start_ms"], record.__dict__["end_ms"]) == (START, END)
    assert record.__dict__["candles_before"] == 0
    assert record.__dict__["candles_after"] == len(truth(START, END))
    assert record.__dict__["principal"] == "api-key:abc"
    assert record.__dict__["duration_ms"] >= 0
