"""Planning the next offset ranges a Kafka sensor requests (pure logic).

The cursor maps "topic/partition" to the next offset to request. Every partition with new
records gets the range [cursor, min(end, cursor + max_per_partition)); a cursor behind the
earliest retained offset (records deleted by retention) jumps forward to it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class OffsetRange:
    topic: str
    partition: int
    start: int
    end: int  # exclusive

    @property
    def size(self) -> int:
        return self.end - self.start

    def label(self) -> str:
        return f"{self.topic}/{self.partition}:{self.start}-{self.end}"

    def as_config(self) -> dict:
        return asdict(self)


def cursor_key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


def load_cursor(raw: str | None) -> dict[str, int]:
    return {key: int(value) for key, value in json.loads(raw).items()} if raw else {}


def dump_cursor(cursor: dict[str, int]) -> str:
    return json.dumps(dict(sorted(cursor.items())))


def plan_ranges(cursor: dict[str, int], bounds: dict[tuple[str, int], tuple[int, int]],
                start_without_cursor: dict[tuple[str, int], int],
                max_per_partition: int) -> tuple[list[OffsetRange], dict[str, int]]:
    """Ranges to request now and the cursor after them.

    `bounds` holds (earliest retained, end) per partition; `start_without_cursor` says where a
    partition the cursor has never seen starts (the ledger's high-water mark).
    """
    ranges = []
    new_cursor = dict(cursor)
    for (topic, partition), (earliest, end) in sorted(bounds.items()):
        key = cursor_key(topic, partition)
        start = max(cursor.get(key, start_without_cursor.get((topic, partition), earliest)), earliest)
        stop = min(end, start + max_per_partition)
        if stop > start:
            ranges.append(OffsetRange(topic, partition, start, stop))
        new_cursor[key] = max(start, stop)
    return ranges, new_cursor


def run_key(ranges: list[OffsetRange]) -> str:
    return ";".join(r.label() for r in ranges)
