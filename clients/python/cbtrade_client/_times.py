"""Points in time as the client accepts them, turned into the epoch milliseconds it sends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from numbers import Integral

TimeArg = datetime | date | str | int
"""A point in time: a datetime (naive means UTC), a date (its midnight UTC), an ISO-8601
string (no offset means UTC; a date alone is its midnight UTC), or epoch milliseconds UTC."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
SMALLEST_EPOCH_MS = 10**11
"""Integers from 1 below this are refused, as the service refuses them: as epoch ms they are
before March 1973, and they are far more likely epoch seconds or a compact YYYYMMDD date."""
LARGEST_EPOCH_MS = 10**15 - 1
"""The service reads at most 15 digits; more are likely epoch microseconds or nanoseconds."""


def to_epoch_ms(name: str, value: TimeArg) -> int:
    """``value`` as epoch milliseconds UTC; TypeError or ValueError naming ``name`` if it is
    not a point in time the service would take as meant."""
    if isinstance(value, bool) or not isinstance(value, datetime | date | str | Integral):
        raise TypeError(
            f"{name} must be a datetime, a date, an ISO-8601 string or epoch milliseconds "
            f"(int), got {type(value).__name__} {value!r}"
        )
    if isinstance(value, Integral):  # int, and numpy's integers
        return _checked_int(name, int(value))
    moment = _parse_iso(name, value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    epoch_ms = (moment - _EPOCH) // _MS
    if epoch_ms < 0:
        raise ValueError(f"{name}={value!r} is before 1970-01-01T00:00:00Z")
    return epoch_ms


def _parse_iso(name: str, text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        hint = " (pass epoch milliseconds as an int)" if text.strip().isdigit() else ""
        raise ValueError(f"{name}={text!r} is not an ISO-8601 date or time{hint}") from None


def _checked_int(name: str, value: int) -> int:
    if value < 0:
        raise ValueError(f"{name}={value} is before 1970 (epoch milliseconds cannot be negative)")
    if value > LARGEST_EPOCH_MS:
        raise ValueError(
            f"{name}={value} is too large for epoch milliseconds "
            "(epoch microseconds or nanoseconds?); pass epoch milliseconds or a datetime"
        )
    if value == 0 or value >= SMALLEST_EPOCH_MS:
        return value
    compact = _compact_date(value)
    if compact is not None:
        raise ValueError(
            f"{name}={value} looks like a compact date (YYYYMMDD); pass "
            f"{compact.isoformat()!r} or epoch milliseconds"
        )
    seconds = _EPOCH + timedelta(seconds=value)
    raise ValueError(
        f"{name}={value} looks like epoch seconds, which the service refuses; pass epoch "
        f"milliseconds ({value * 1000}) or {seconds.strftime('%Y-%m-%dT%H:%M:%SZ')!r}"
    )


def _compact_date(value: int) -> date | None:
    """The date that ``value`` spells as eight digits ``YYYYMMDD`` from 1970 on, if any."""
    year, month_day = divmod(value, 10_000)
    if not 1970 <= year <= 9999:
        return None
    try:
        return date(year, *divmod(month_day, 100))
    except ValueError:
        return None
