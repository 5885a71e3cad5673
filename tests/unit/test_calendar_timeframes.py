"""Calendar candle spans: how long an exchange's own weekly, monthly or 3-day candle lasts,
whatever its grid (months in the exchange's time zone included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cbtrade.calendar_timeframes import FixedSpan, MonthSpan, calendar_span

DAY = 86_400_000
HOUR = 3_600_000


def ms(*parts: int, zone: timedelta = timedelta(0)) -> int:
    """Epoch ms of a wall-clock time in ``zone``."""
    return int((datetime(*parts, tzinfo=UTC) - zone).timestamp() * 1000)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("timeframe", "span"),
    [
        ("3d", FixedSpan(3 * DAY)),
        ("1w", FixedSpan(7 * DAY)),
        ("2w", FixedSpan(14 * DAY)),
        ("1M", MonthSpan(1)),
        ("3M", MonthSpan(3)),
    ],
)
def test_calendar_timeframes_have_spans(timeframe: str, span: object) -> None:
    assert calendar_span(timeframe) == span


@pytest.mark.parametrize("timeframe", ["1d", "5m", "8h", "1h", "0w", "1y", "w", "", None])
def test_fixed_grid_timeframes_and_other_names_have_none(timeframe: str) -> None:
    assert calendar_span(timeframe) is None


def test_a_fixed_span_ends_after_its_length_from_any_open() -> None:
    week = FixedSpan(7 * DAY)
    thursday = 0  # 1970-01-01
    assert week.end(thursday) == 7 * DAY
    assert week.unclosed_from(7 * DAY) == 1  # the week opening at 0 has just closed
    assert week.final_before(7 * DAY) == 1
    assert week.periods(thursday, 21 * DAY) == 3
    assert (week.min_ms, week.max_ms) == (7 * DAY, 7 * DAY)


@pytest.mark.parametrize("zone", [timedelta(0), timedelta(hours=8), timedelta(hours=-5)])
def test_a_month_ends_a_calendar_month_later_in_its_exchange_time_zone(zone: timedelta) -> None:
    month = MonthSpan(1)
    for year, first, following in [(2024, 2, 3), (2024, 12, 1), (2025, 2, 3), (2025, 1, 2)]:
        opens = ms(year, first, 1, zone=zone)
        closes = ms(year + (following < first), following, 1, zone=zone)
        assert month.end(opens) == closes
    # A month read up to a moment stops at the month that has not ended: its open, less the
    # largest zone offset (a month in UTC+8 opens 8 hours before the UTC one).
    moment = ms(2025, 3, 10)
    assert ms(2025, 3, 1, zone=zone) >= month.unclosed_from(moment) > ms(2025, 2, 1, zone=zone)
    assert month.periods(ms(2024, 1, 1, zone=zone), ms(2026, 8, 1, zone=zone)) == 31
    assert month.final_before(moment) == moment - 31 * DAY + 1


def test_a_quarter_ends_three_months_later() -> None:
    assert MonthSpan(3).end(ms(2024, 11, 1)) == ms(2025, 2, 1)
    assert MonthSpan(3).min_ms == 84 * DAY
