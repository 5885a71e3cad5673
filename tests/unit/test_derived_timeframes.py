"""Derived timeframes: names, bucket boundaries (fixed, Monday weeks, calendar months), and
the choice of a base."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from cbtrade.calendar_timeframes import calendar_span
from cbtrade.derived_timeframes import (
    DAY_MS,
    HOUR_MS,
    FixedBuckets,
    MonthBuckets,
    buckets_of,
    plan_timeframe,
)
from cbtrade.errors import InvalidTimeframeError

COINBASE = ["1m", "5m", "15m", "30m", "1h", "2h", "6h", "1d"]
KRAKEN = ["1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w", "2w"]
BINANCE = ["1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"]
BINANCE += ["3d", "1w", "1M"]


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("timeframe", "buckets"),
    [
        ("7m", FixedBuckets(7 * 60_000)),
        ("8h", FixedBuckets(8 * HOUR_MS)),
        ("3d", FixedBuckets(3 * DAY_MS)),
        ("1w", FixedBuckets(7 * DAY_MS, 4 * DAY_MS)),
        ("2w", FixedBuckets(14 * DAY_MS, 4 * DAY_MS)),
        ("1M", MonthBuckets(1)),
        ("3M", MonthBuckets(3)),
    ],
)
def test_names_are_a_whole_number_of_a_unit(timeframe: str, buckets: object) -> None:
    assert buckets_of(timeframe) == buckets


@pytest.mark.parametrize("timeframe", ["0h", "1y", "90s", "h", "01h", "1.5h", "10000m", " 1h", 8])
def test_other_names_are_not_timeframes(timeframe: str) -> None:
    assert buckets_of(timeframe) is None


def test_fixed_buckets_are_epoch_multiples() -> None:
    eight_hours = FixedBuckets(8 * HOUR_MS)
    inside = ms(2024, 3, 5, 9, 30)
    assert eight_hours.floor(inside) == ms(2024, 3, 5, 8)
    assert eight_hours.ceil(inside) == ms(2024, 3, 5, 16)
    assert eight_hours.ceil(ms(2024, 3, 5, 8)) == ms(2024, 3, 5, 8)
    assert eight_hours.advance(ms(2024, 3, 5, 8), 3) == ms(2024, 3, 6, 8)
    assert eight_hours.starts(ms(2024, 3, 5, 1), ms(2024, 3, 6)).tolist() == [
        ms(2024, 3, 5, 8),
        ms(2024, 3, 5, 16),
    ]


def test_weeks_start_on_monday() -> None:
    week = buckets_of("1w")
    assert week is not None
    # 2024-03-06 is a Wednesday; its week starts on Monday 2024-03-04.
    assert week.floor(ms(2024, 3, 6, 12)) == ms(2024, 3, 4)
    assert week.ceil(ms(2024, 3, 6, 12)) == ms(2024, 3, 11)
    starts = week.starts(ms(2024, 1, 1), ms(2024, 2, 1))
    assert [datetime.fromtimestamp(s / 1000, UTC).weekday() for s in starts] == [0] * 5
    assert starts[0] == ms(2024, 1, 1)  # a Monday


def test_months_follow_the_calendar() -> None:
    month = MonthBuckets(1)
    assert month.floor(ms(2024, 2, 29, 23, 59)) == ms(2024, 2, 1)
    assert month.ceil(ms(2024, 2, 10)) == ms(2024, 3, 1)
    assert month.ceil(ms(2024, 2, 1)) == ms(2024, 2, 1)
    assert month.advance(ms(2023, 12, 1), 3) == ms(2024, 3, 1)
    assert month.starts(ms(2023, 11, 15), ms(2024, 3, 1)).tolist() == [
        ms(2023, 12, 1),
        ms(2024, 1, 1),
        ms(2024, 2, 1),
    ]
    quarter = MonthBuckets(3)
    assert quarter.floor(ms(2024, 5, 20)) == ms(2024, 4, 1)
    assert quarter.starts(ms(2024, 1, 1), ms(2025, 1, 2)).tolist() == [
        ms(2024, 1, 1),
        ms(2024, 4, 1),
        ms(2024, 7, 1),
        ms(2024, 10, 1),
        ms(2025, 1, 1),
    ]
    assert month.starts(ms(2024, 3, 1), ms(2024, 3, 1)).dtype == np.int64


@pytest.mark.parametrize(
    ("timeframe", "offered", "base"),
    [
        ("8h", COINBASE, "2h"),
        ("4h", COINBASE, "2h"),  # a service timeframe the exchange does not offer
        ("12h", COINBASE, "6h"),
        ("3d", COINBASE, "1d"),
        ("1w", COINBASE, "1d"),
        ("1M", COINBASE, "1d"),
        ("7m", COINBASE, "1m"),
        ("90m", COINBASE, "30m"),
        ("8h", KRAKEN, "4h"),
        ("2d", BINANCE, "1d"),
        ("1w", None, "1d"),
    ],
)
def test_a_timeframe_not_offered_is_derived_from_the_longest_that_tiles_it(
    timeframe: str, offered: list[str] | None, base: str
) -> None:
    plan = plan_timeframe(timeframe, exchange="x", offered=offered)
    assert (plan.base, plan.derived_from) == (base, base)
    assert plan.buckets == buckets_of(timeframe)


@pytest.mark.parametrize(
    ("timeframe", "offered"), [("1h", COINBASE), ("8h", BINANCE), ("5m", None)]
)
def test_an_offered_service_timeframe_is_native(timeframe: str, offered: list[str] | None) -> None:
    plan = plan_timeframe(timeframe, exchange="x", offered=offered)
    assert (plan.base, plan.buckets, plan.derived_from) == (timeframe, None, None)


@pytest.mark.parametrize(
    ("timeframe", "offered"), [("1w", KRAKEN), ("2w", KRAKEN), ("1M", BINANCE), ("3d", BINANCE)]
)
def test_an_offered_calendar_timeframe_is_native_on_the_exchange_grid(
    timeframe: str, offered: list[str]
) -> None:
    plan = plan_timeframe(timeframe, exchange="x", offered=offered)
    assert (plan.base, plan.buckets, plan.derived_from) == (timeframe, None, None)
    assert plan.span == calendar_span(timeframe)


def test_an_offered_timeframe_the_service_does_not_serve_is_refused_not_derived() -> None:
    with pytest.raises(InvalidTimeframeError, match="offers '1s' candles natively") as refused:
        plan_timeframe("1s", exchange="x", offered=[*BINANCE, "1s"])
    assert "served natively: 1m, 3m, 5m" in str(refused.value)
    assert ", 12h, 1d, 3d, 1w, 1M;" in str(refused.value)


@pytest.mark.parametrize("timeframe", ["0h", "1y", "90s", "1.5h"])
def test_a_name_that_is_no_timeframe_is_refused_naming_what_is_served(timeframe: str) -> None:
    with pytest.raises(InvalidTimeframeError) as refused:
        plan_timeframe(timeframe, exchange="coinbase", offered=COINBASE)
    message = str(refused.value)
    assert repr(timeframe) in message
    assert "1m, 5m, 15m, 30m, 1h, 2h, 6h, 1d" in message
    assert "calendar months" in message


def test_a_timeframe_no_offered_one_tiles_is_refused() -> None:
    with pytest.raises(InvalidTimeframeError, match=r"'7m'.*none it offers divides") as refused:
        plan_timeframe("7m", exchange="slow", offered=["5m", "1h"])
    assert "served natively: 5m, 1h" in str(refused.value)
