"""OHLCV aggregation into buckets, missing base candles and empty buckets included."""

from __future__ import annotations

from cbtrade.candle_aggregation import aggregate
from cbtrade.candle_table import CandleTable
from cbtrade.derived_timeframes import DAY_MS, HOUR_MS, FixedBuckets, MonthBuckets
from cbtrade.models import Candle

MONDAY = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday
H2 = 2 * HOUR_MS


def candle(timestamp: int, open_: float, high: float, low: float, close: float) -> Candle:
    return Candle(timestamp, open_, high, low, close, volume=open_ / 10)


def test_a_bucket_takes_first_open_extremes_last_close_and_summed_volume() -> None:
    base = [
        candle(MONDAY, 10, 12, 9, 11),
        candle(MONDAY + H2, 11, 15, 10, 14),
        candle(MONDAY + 2 * H2, 14, 14.5, 7, 8),
        candle(MONDAY + 3 * H2, 8, 9, 7.5, 8.5),
    ]
    derived = aggregate(CandleTable.from_candles(base), FixedBuckets(8 * HOUR_MS))
    assert derived.to_candles() == [Candle(MONDAY, 10, 15, 7, 8.5, 1.0 + 1.1 + 1.4 + 0.8)]


def test_missing_base_candles_are_left_out_and_empty_buckets_are_absent() -> None:
    base = [
        # first bucket: its first base candle is missing (a quiet interval)
        candle(MONDAY + H2, 11, 15, 10, 14),
        candle(MONDAY + 3 * H2, 8, 9, 7.5, 8.5),
        # second bucket (MONDAY + 8h): no candle at all
        # third bucket: one candle
        candle(MONDAY + 8 * H2, 20, 21, 19, 20.5),
    ]
    derived = aggregate(CandleTable.from_candles(base), FixedBuckets(8 * HOUR_MS))
    assert derived.to_candles() == [
        Candle(MONDAY, 11, 15, 7.5, 8.5, 1.1 + 0.8),
        Candle(MONDAY + 16 * HOUR_MS, 20, 21, 19, 20.5, 2.0),
    ]


def test_weeks_and_months_open_at_their_calendar_start() -> None:
    days = [candle(MONDAY + i * DAY_MS, 100 + i, 101 + i, 99 + i, 100.5 + i) for i in range(40)]
    table = CandleTable.from_candles(days)
    weeks = aggregate(table, FixedBuckets(7 * DAY_MS, 4 * DAY_MS)).to_candles()
    assert [week.timestamp for week in weeks] == [MONDAY + i * 7 * DAY_MS for i in range(6)]
    assert weeks[1] == Candle(
        MONDAY + 7 * DAY_MS, 107, 114, 106, 113.5, sum(c.volume for c in days[7:14])
    )
    months = aggregate(table, MonthBuckets(1)).to_candles()
    assert [(m.timestamp, m.open, m.close) for m in months] == [
        (MONDAY, 100, 130.5),
        (MONDAY + 31 * DAY_MS, 131, 139.5),  # 2024-02-01
    ]


def test_no_candles_make_no_buckets_and_no_row_provenance() -> None:
    assert len(aggregate(CandleTable.empty(), MonthBuckets(1))) == 0
    one = CandleTable.from_candles([candle(MONDAY, 1, 2, 0.5, 1.5)]).with_source(("key", "etag"))
    assert aggregate(one, FixedBuckets(DAY_MS)).sources is None
