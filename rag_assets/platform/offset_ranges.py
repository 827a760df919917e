"""Arithmetic on half-open Kafka offset ranges [start, end).

The ledger of applied offsets is a set of disjoint ranges per (consumer, topic, partition), so a
range delivered twice, overlapping another, or applied before an earlier one is still applied
exactly once in effect: only its uncovered parts are new.
"""

from __future__ import annotations

Range = tuple[int, int]


def coalesce(ranges: list[Range]) -> list[Range]:
    """Sorted, merged, non-empty ranges (touching ranges are merged)."""
    merged: list[Range] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def uncovered(wanted: Range, applied: list[Range]) -> list[Range]:
    """The parts of `wanted` that no applied range covers."""
    start, end = wanted
    gaps: list[Range] = []
    cursor = start
    for a_start, a_end in coalesce(applied):
        if a_end <= cursor or a_start >= end:
            continue
        if a_start > cursor:
            gaps.append((cursor, a_start))
        cursor = max(cursor, a_end)
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def contains(ranges: list[Range], offset: int) -> bool:
    return any(start <= offset < end for start, end in ranges)


def high_water_mark(applied: list[Range], floor: int = 0) -> int:
    """The first offset at or after `floor` that is not applied yet."""
    mark = floor
    for start, end in coalesce(applied):
        if start <= mark < end:
            mark = end
    return mark
