"""Arithmetic on sets of half-open time ranges (coverage and gaps)."""

from __future__ import annotations

from collections.abc import Iterable

from cbtrade.models import TimeRange


def merge_ranges(ranges: Iterable[TimeRange]) -> list[TimeRange]:
    """Sort ``ranges`` and join those that overlap or touch; empty ranges are dropped."""
    merged: list[TimeRange] = []
    for start, end in sorted(r for r in ranges if r.end > r.start):
        if merged and start <= merged[-1].end:
            if end > merged[-1].end:
                merged[-1] = TimeRange(merged[-1].start, end)
        else:
            merged.append(TimeRange(start, end))
    return merged


def clip_ranges(ranges: Iterable[TimeRange], window: TimeRange) -> list[TimeRange]:
    """The parts of ``ranges`` inside ``window``, merged."""
    return merge_ranges(
        TimeRange(max(start, window.start), min(end, window.end)) for start, end in ranges
    )


def subtract_ranges(window: TimeRange, covered: Iterable[TimeRange]) -> list[TimeRange]:
    """The parts of ``window`` not in ``covered``: the gaps, ascending."""
    gaps: list[TimeRange] = []
    cursor = window.start
    for start, end in clip_ranges(covered, window):
        if start > cursor:
            gaps.append(TimeRange(cursor, start))
        cursor = max(cursor, end)
    if cursor < window.end:
        gaps.append(TimeRange(cursor, window.end))
    return gaps
