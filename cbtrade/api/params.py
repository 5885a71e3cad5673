"""Parsing of the API's query parameters into the service's types."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from cbtrade.errors import InvalidInputError

_EPOCH_MS = re.compile(r"^[0-9]{1,15}$")
_SYMBOL_ALIAS = re.compile(r"^([A-Za-z0-9.]+)[-_]([A-Za-z0-9.]+)$")
SMALLEST_EPOCH_MS = 10**11
"""Integers from 1 up to this are refused: as epoch ms they are March 1973 or earlier, and
as epoch seconds (the usual mistake) they are any time up to the year 5138."""


def parse_timestamp(name: str, value: str | None) -> int | None:
    """Epoch ms from integer epoch milliseconds or an ISO-8601 time (UTC if no offset).

    ``0`` is accepted; other integers below ``SMALLEST_EPOCH_MS`` are refused as epoch
    seconds, or as a compact ``YYYYMMDD`` date when they read as one.
    """
    if value is None:
        return None
    text = value.strip()
    if _EPOCH_MS.match(text):
        return _epoch_ms(name, text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"{name}={value!r} is neither epoch milliseconds nor an ISO-8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    epoch_ms = int(moment.timestamp() * 1000)
    if epoch_ms < 0:
        raise InvalidInputError(f"{name}={value!r} is before 1970-01-01")
    return epoch_ms


def _epoch_ms(name: str, digits: str) -> int:
    """The integer ``digits`` as epoch ms, refusing epoch seconds and compact dates."""
    number = int(digits)
    if number == 0 or number >= SMALLEST_EPOCH_MS:
        return number
    if len(digits) == 8:
        compact = _compact_date(digits)
        if compact is not None:
            raise InvalidInputError(
                f"{name}={digits} looks like a compact date (YYYYMMDD); "
                f"send ISO-8601 ({compact.isoformat()}) or epoch milliseconds"
            )
    as_seconds = datetime.fromtimestamp(number, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise InvalidInputError(
        f"{name}={digits} looks like epoch seconds; "
        f"send epoch milliseconds ({number * 1000}) or ISO-8601 ({as_seconds})"
    )


def _compact_date(digits: str) -> date | None:
    """The calendar date that eight digits spell as ``YYYYMMDD``, from 1970 on, if any."""
    year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:])
    if year < 1970:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def normalize_symbol(value: str | None) -> str | None:
    """The ccxt unified symbol: ``BTC-USD`` and ``BTC_USD`` mean ``BTC/USD``."""
    if value is None:
        return None
    alias = _SYMBOL_ALIAS.match(value)
    if alias and "/" not in value:
        return f"{alias.group(1)}/{alias.group(2)}"
    return value
