"""The stall rule of `LedgerPositionedStream.lag`: polls that bring nothing while Kafka holds
readable records fail the stream (its worker then starts over with a new consumer); time spent
applying between polls, held-back partitions and an idle source are no stall. The Kafka client
is a stand-in here: the rule is the stream's own logic."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from kafka import TopicPartition

from rag_assets.platform.kafka_ingest import OffsetRangeConfig
from rag_assets.platform.kafka_stream import LedgerPositionedStream, StalledConsumer

STALL_S = 0.05
TP = TopicPartition("cdc.crm.customers", 0)


class StandInConsumer:
    """Answers polls from `pending` (offsets) and end offsets from `end`."""

    def __init__(self, end: int) -> None:
        self.end = end
        self.pending: list[int] = []

    def poll(self, timeout_ms: int, max_records: int) -> dict:
        records = [SimpleNamespace(offset=o) for o in self.pending]
        self.pending = []
        return {TP: records} if records else {}

    def end_offsets(self, partitions) -> dict:
        return {tp: self.end for tp in partitions}

    def seek(self, tp, offset) -> None:
        pass

    def pause(self, *tps) -> None:
        pass

    def resume(self, *tps) -> None:
        pass


def stream_at(position: int, end: int) -> tuple[LedgerPositionedStream, StandInConsumer]:
    stream = LedgerPositionedStream(SimpleNamespace(), "cdc", ".*", transaction=None,
                                    discover_every_s=1e9, stall_after_s=STALL_S)
    consumer = StandInConsumer(end)
    stream._consumer = consumer
    stream._positions = {TP: position}
    stream._discovered_at = time.monotonic()
    return stream, consumer


def test_empty_polls_while_records_are_readable_fail_the_stream():
    stream, _ = stream_at(position=0, end=10)
    assert stream.poll() == []
    time.sleep(STALL_S * 1.5)
    assert stream.poll() == []
    with pytest.raises(StalledConsumer, match="10 records are readable"):
        stream.lag()


def test_time_spent_applying_between_polls_is_no_stall():
    stream, consumer = stream_at(position=0, end=10)
    consumer.pending = [0, 1, 2]
    assert len(stream.poll()) == 1
    time.sleep(STALL_S * 1.5)  # a long transaction after the poll
    assert stream.lag().events == 7


def test_an_idle_source_is_no_stall_when_records_then_arrive():
    stream, consumer = stream_at(position=10, end=10)
    assert stream.poll() == []
    time.sleep(STALL_S * 1.5)
    assert stream.lag().events == 0
    consumer.end = 12  # records arrive between the lag reading and the next poll
    assert stream.lag().events == 2


def test_a_held_back_partition_is_no_stall():
    stream, _ = stream_at(position=0, end=10)
    stream.hold_back(OffsetRangeConfig(topic=TP.topic, partition=0, start=0, end=10), "range: X")
    assert stream.poll() == []
    time.sleep(STALL_S * 1.5)
    assert stream.lag().events == 10
