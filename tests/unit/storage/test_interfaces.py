"""SeriesBounds: how a saved record merges into the stored one, and what contradicts itself."""

from __future__ import annotations

import pytest

from cbtrade.errors import InvalidInputError
from cbtrade.storage.interfaces import SeriesBounds

A, B, C, D = 1_000, 2_000, 3_000, 4_000


@pytest.mark.parametrize(
    ("stored", "newer", "merged"),
    [
        # empty_before only rises.
        (SeriesBounds(B), SeriesBounds(A), SeriesBounds(B)),
        (SeriesBounds(A), SeriesBounds(B), SeriesBounds(B)),
        # first_candle: the new one if given, else the stored one.
        (SeriesBounds(A), SeriesBounds(B, B), SeriesBounds(B, B)),
        (SeriesBounds(B, B), SeriesBounds(A), SeriesBounds(B, B)),
        (SeriesBounds(B, B), SeriesBounds(), SeriesBounds(B, B)),
        # empty_from: the new one replaces, None keeps the stored one.
        (SeriesBounds(A, None, C), SeriesBounds(0, None, D), SeriesBounds(A, None, D)),
        (SeriesBounds(A, None, D), SeriesBounds(0, None, B), SeriesBounds(A, None, B)),
        (SeriesBounds(A, None, C), SeriesBounds(B, B), SeriesBounds(B, B, C)),
        # Fields from different savers all survive.
        (SeriesBounds(0, None, D), SeriesBounds(B, B), SeriesBounds(B, B, D)),
    ],
)
def test_merge_rules(stored: SeriesBounds, newer: SeriesBounds, merged: SeriesBounds) -> None:
    assert stored.merged(newer) == merged


def test_clear_empty_from_removes_it_and_keeps_the_rest() -> None:
    stored = SeriesBounds(A, A, C)
    assert stored.merged(SeriesBounds(), clear_empty_from=True) == SeriesBounds(A, A)
    assert stored.merged(SeriesBounds(B, B), clear_empty_from=True) == SeriesBounds(B, B)


@pytest.mark.parametrize(
    ("stored", "newer", "message"),
    [
        # A first candle before what was verified empty, or verified empty past the first candle.
        (SeriesBounds(B, B), SeriesBounds(A, A), "first_candle"),
        (SeriesBounds(A, A), SeriesBounds(B), "first_candle"),
        # A market that stopped trading before its verified-empty start.
        (SeriesBounds(C), SeriesBounds(0, None, B), "empty_from"),
        (SeriesBounds(0, None, B), SeriesBounds(C), "empty_from"),
    ],
)
def test_a_merge_that_contradicts_itself_is_refused(
    stored: SeriesBounds, newer: SeriesBounds, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        stored.merged(newer)


@pytest.mark.parametrize(
    "bounds", [SeriesBounds(A, B), SeriesBounds(0, 0, 0), SeriesBounds(B, None, A)]
)
def test_check_consistent_refuses_contradictions(bounds: SeriesBounds) -> None:
    with pytest.raises(InvalidInputError, match="series bounds"):
        bounds.check_consistent()


@pytest.mark.parametrize(
    "bounds", [SeriesBounds(), SeriesBounds(A, A), SeriesBounds(A, A, B), SeriesBounds(A, None, B)]
)
def test_check_consistent_accepts_consistent_records(bounds: SeriesBounds) -> None:
    bounds.check_consistent()
