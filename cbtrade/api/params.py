"""Parsing of the API's query parameters into the service's types."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from cbtrade.errors import InvalidInputError

_EPOCH_MS = re.compile(r"^[0-9]{1,15}$")
_SYMBOL_ALIAS = re.compile(r"^([A-Za-z0-9.]+)[-_]([A-Za-z0-9.]+)$")


def parse_timestamp(name: str, value: str | None) -> int | None:
    """Epoch ms from integer epoch milliseconds or an ISO-8601 time (UTC if no offset)."""
    if value is None:
        return None
    text = value.strip()
    if _EPOCH_MS.match(text):
        return int(text)
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


def normalize_symbol(value: str | None) -> str | None:
    """The ccxt unified symbol: ``BTC-USD`` and ``BTC_USD`` mean ``BTC/USD``."""
    if value is None:
        return None
    alias = _SYMBOL_ALIAS.match(value)
    if alias and "/" not in value:
        return f"{alias.group(1)}/{alias.group(2)}"
    return value
