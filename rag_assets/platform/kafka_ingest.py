"""Reading the offset ranges a run was asked to apply, or every retained record for a rebuild."""

from __future__ import annotations

from collections.abc import Iterator

from dagster import Config
from pydantic import Field

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


def read_records(kafka: KafkaResource, topic: str, partition: int,
                 parts: list[tuple[int, int]]) -> Iterator:
    for start, end in parts:
        yield from kafka.read_range(topic, partition, start, end)


def parts_of(rng: OffsetRangeConfig, parts: list[tuple[int, int]]) -> list[OffsetRangeConfig]:
    """The parts of `rng` the ledger handed out, as ranges of its partition."""
    return [OffsetRangeConfig(topic=rng.topic, partition=rng.partition, start=start, end=end)
            for start, end in parts]


def ranges_as_dicts(ranges) -> list[dict]:
    """Offset ranges as plain dicts, for metadata."""
    return [{"topic": r.topic, "partition": r.partition, "start": r.start, "end": r.end}
            for r in ranges]
