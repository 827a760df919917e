"""Offset ranges of Kafka a run or a micro-batch applies: claimed in the ledger with their records,
or every retained record for a rebuild."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dagster import Config
from pydantic import Field

from rag_assets.platform import offset_ledger
from resources.kafka import KafkaResource


class OffsetRangeConfig(Config):
    topic: str
    partition: int
    start: int
    end: int


class OffsetRangesConfig(Config):
    """Run config of a Kafka-fed asset. Sensors send ranges; with none, the asset rebuilds."""

    ranges: list[OffsetRangeConfig] = Field(
        default_factory=list,
        description="Offset ranges [start, end) to apply. Left empty, the asset is rebuilt from "
        "the earliest retained offset of every partition.",
    )

    @property
    def is_rebuild(self) -> bool:
        return not self.ranges


def rebuild_ranges(kafka: KafkaResource, logical_pattern: str) -> list[OffsetRangeConfig]:
    """Every retained record of every matching topic, as ranges."""
    topics = kafka.topics_matching(logical_pattern)
    return [
        OffsetRangeConfig(topic=tp.topic, partition=tp.partition, start=begin, end=end)
        for tp, (begin, end) in sorted(kafka.offset_bounds(topics).items())
        if end > begin
    ]


@dataclass(frozen=True)
class ClaimedRange:
    """The parts of an offset range the ledger handed to one transaction, with their records."""

    parts: list[tuple[int, int]]
    records: list


def claim_range(cur, consumer: str, rng: OffsetRangeConfig, run_id: str | None,
                read: Callable[[str, int, int, int], list],
                prefetched: list | None = None) -> ClaimedRange | None:
    """Record the parts of `rng` that `consumer` has not applied yet as applied, in the
    caller's transaction (they commit with what is done with their records, or not at all),
    and return them with their records: those of `prefetched` inside the parts, else what
    `read(topic, partition, start, end)` gives. None when every offset was applied before."""
    parts = offset_ledger.claim(cur, consumer, rng.topic, rng.partition, (rng.start, rng.end),
                                run_id)
    if not parts:
        return None
    if prefetched is not None:
        records = [r for r in prefetched if any(start <= r.offset < end for start, end in parts)]
    else:
        records = [r for start, end in parts for r in read(rng.topic, rng.partition, start, end)]
    return ClaimedRange(parts, records)


def parts_of(rng: OffsetRangeConfig, parts: list[tuple[int, int]]) -> list[OffsetRangeConfig]:
    """The parts of `rng` the ledger handed out, as ranges of its partition."""
    return [OffsetRangeConfig(topic=rng.topic, partition=rng.partition, start=start, end=end)
            for start, end in parts]


def ranges_as_dicts(ranges) -> list[dict]:
    """Offset ranges as plain dicts, for metadata."""
    return [{"topic": r.topic, "partition": r.partition, "start": r.start, "end": r.end}
            for r in ranges]
