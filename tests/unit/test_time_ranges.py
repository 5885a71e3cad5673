"""Range arithmetic behind coverage and gaps."""

from __future__ import annotations

from cbtrade.models import TimeRange as R
from cbtrade.time_ranges import clip_ranges, merge_ranges, subtract_ranges


def test_merge_joins_overlapping_and_touching_and_drops_empty() -> None:
    assert merge_ranges([R(5, 7), R(0, 2), R(2, 3), R(6, 9), R(4, 4)]) == [R(0, 3), R(5, 9)]


def test_clip_keeps_only_the_window() -> None:
    assert clip_ranges([R(0, 5), R(8, 20)], R(3, 10)) == [R(3, 5), R(8, 10)]


def test_subtract_gives_gaps_at_start_middle_and_end() -> None:
    assert subtract_ranges(R(0, 10), [R(2, 4), R(6, 8)]) == [R(0, 2), R(4, 6), R(8, 10)]
    assert subtract_ranges(R(0, 10), [R(0, 10)]) == []
    assert subtract_ranges(R(0, 10), []) == [R(0, 10)]
    assert subtract_ranges(R(3, 7), [R(0, 4), R(6, 12)]) == [R(4, 6)]
