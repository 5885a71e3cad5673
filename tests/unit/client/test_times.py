"""The points in time the client accepts, and the ones it refuses before sending."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy
import pytest

from cbtrade_client._times import to_epoch_ms

JAN_1 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
NOON = JAN_1 + 12 * 3_600_000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-01T12:00:00Z", NOON),
        ("2024-01-01T12:00:00+00:00", NOON),
        ("2024-01-01T13:30:00+01:30", NOON),
        ("2024-01-01T07:00:00-05:00", NOON),
        ("2024-01-01T12:00:00", NOON),  # no offset: UTC
        ("2024-01-01T12:00", NOON),
        ("2024-01-01 12:00:00.000Z", NOON),
        (" 2024-01-01T12:00:00Z ", NOON),
        ("2024-01-01", JAN_1),  # a date alone: its midnight UTC
        ("20240101T120000Z", NOON),  # ISO-8601's basic format
        (datetime(2024, 1, 1, 12), NOON),  # naive: UTC
        (datetime(2024, 1, 1, 12, tzinfo=UTC), NOON),
        (datetime(2024, 1, 1, 21, tzinfo=timezone(timedelta(hours=9))), NOON),
        (datetime(2024, 1, 1, 12, 0, 0, 999), NOON),  # below a millisecond: floored
        (date(2024, 1, 1), JAN_1),
        (NOON, NOON),
        (0, 0),
        (10**11, 10**11),
        (10**15 - 1, 10**15 - 1),
    ],
)
def test_every_form_is_the_same_epoch_milliseconds(value: Any, expected: int) -> None:
    assert to_epoch_ms("start", value) == expected


def test_numpy_integers_are_integers() -> None:
    assert to_epoch_ms("end", numpy.int64(NOON)) == NOON


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1_704_067_200, r"end=1704067200 looks like epoch seconds.*1704067200000.*2024-01-01T00"),
        (20240101, r"end=20240101 looks like a compact date \(YYYYMMDD\); pass '2024-01-01'"),
        (20241399, r"end=20241399 looks like epoch seconds"),  # not a date
        (1, r"end=1 looks like epoch seconds"),
        (10**11 - 1, r"looks like epoch seconds"),
        (-1, r"end=-1 is before 1970"),
        (1_704_067_200_000_000, r"too large for epoch milliseconds"),
        ("yesterday", r"end='yesterday' is not an ISO-8601 date or time"),
        ("1704067200000", r"not an ISO-8601.*pass epoch milliseconds as an int"),
        ("1969-12-31T23:59:59Z", r"before 1970"),
        (datetime(1969, 12, 31, 23), r"before 1970"),
        ("2024-02-30", r"not an ISO-8601"),
    ],
)
def test_values_the_service_would_misread_or_refuse_are_a_value_error(
    value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        to_epoch_ms("end", value)


@pytest.mark.parametrize("value", [1.7e12, True, None, b"2024-01-01", [2024, 1, 1]])
def test_other_types_are_a_type_error_naming_the_parameter(value: Any) -> None:
    with pytest.raises(TypeError, match=r"^start must be a datetime, a date, an ISO-8601"):
        to_epoch_ms("start", value)
