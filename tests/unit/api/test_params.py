"""Query-parameter parsing: times and symbol aliases."""

from __future__ import annotations

import pytest

from cbtrade.api.params import normalize_symbol, parse_timestamp
from cbtrade.errors import InvalidInputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1704067200000", 1_704_067_200_000),
        ("2024-01-01T00:00:00Z", 1_704_067_200_000),
        ("2024-01-01T00:00:00+00:00", 1_704_067_200_000),
        ("2024-01-01T01:00:00+01:00", 1_704_067_200_000),
        ("2024-01-01", 1_704_067_200_000),
        ("2024-01-01T00:00:00.250Z", 1_704_067_200_250),
        ("0", 0),
    ],
)
def test_times_parse_to_epoch_ms(text: str, expected: int) -> None:
    assert parse_timestamp("start", text) == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "-5", "1e12", "2024-13-01", "1969-12-31T00:00:00Z", "", "9" * 20]
)
def test_bad_times_name_the_parameter(text: str) -> None:
    with pytest.raises(InvalidInputError, match="start="):
        parse_timestamp("start", text)


def test_missing_time_is_none() -> None:
    assert parse_timestamp("end", None) is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("BTC/USD", "BTC/USD"),
        ("BTC-USD", "BTC/USD"),
        ("BTC_USD", "BTC/USD"),
        ("BTC/USDT:USDT", "BTC/USDT:USDT"),
        ("BTC-USD-PERP", "BTC-USD-PERP"),
        (None, None),
    ],
)
def test_symbol_aliases(given: str | None, expected: str | None) -> None:
    assert normalize_symbol(given) == expected
