"""A Kafka consumer positioned at a ledger consumer's applied marks, read in micro-batches.

Used by the streaming workers. Without a consumer group (the single-process default) the stream
assigns itself every partition of its topics; with one (`rag-assets stream`, several processes of
a source) it subscribes, and Kafka's group protocol (cooperative sticky assignor) splits the
partitions among the group's members and moves a dead member's partitions to the others.
Either way nothing is committed to Kafka: each partition the stream gets is sought to the first
offset the ledger has not applied, and every poll is handed out as one contiguous offset range
per partition — [position before the poll, last offset + 1) — with its records. The caller claims
that range in the ledger in the transaction that applies it, exactly as a run does with a range
from its config, so a range applied meanwhile by a run, a rebuild or the partition's previous
owner is skipped rather than applied twice.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

from rag_assets.platform import offset_ledger
from rag_assets.platform.item_guard import failure_reason
from rag_assets.platform.kafka_ingest import OffsetRangeConfig
from rag_assets.platform.micro_batch import LagReport
from resources.kafka import KafkaResource

FETCH_BYTES_PER_PARTITION = 512 * 1024
# A group member that stops heartbeating (SIGKILL, a lost machine) loses its partitions after
# this long: the bound of the gap before another member applies them. Kafka's default is 45 s.
GROUP_SESSION_TIMEOUT_MS = 10_000
# A catch-up step links and rebuilds profiles between polls for minutes; a member that has not
# polled for this long is taken out of the group (its partitions move) until it polls again.
GROUP_MAX_POLL_INTERVAL_MS = 900_000
# A request the broker never answers fails after this long (kafka-python's default is 305 s).
REQUEST_TIMEOUT_MS = 30_000
# Polls that bring nothing for this long while Kafka holds records past the stream's positions
# (partitions held back aside) mean the client is stuck — seen after broker kills in the chaos
# bench, cause unknown: the stream fails, so its worker starts over with a new consumer. Counted
# from the first empty poll, so time spent applying between polls is no stall.
STALL_AFTER_S = 60.0
log = logging.getLogger(__name__)


class StalledConsumer(RuntimeError):
    """The consumer returns nothing while Kafka holds records it has not read."""


@dataclass(frozen=True)
class KafkaLag:
    events: int
    partitions_behind: int
    partitions: int
    held_back: tuple[HeldBack, ...] = ()

    def metadata(self) -> dict:
        held = {"partitions_held_back": [f"{h.topic}[{h.partition}]@{h.start}: {h.reason}"
                                         for h in self.held_back]} if self.held_back else {}
        return {"lag_events": self.events, "partitions_behind": self.partitions_behind,
                "partitions": self.partitions, **held}

    def report(self, max_events: int) -> LagReport:
        """This lag against its bound, as the lag checks and streaming sensors report it."""
        return LagReport(passed=self.events <= max_events,
                         metadata={**self.metadata(), "max_lag_events": max_events})


HOLD_BACK_FIRST_S = 1.0
HOLD_BACK_MAX_S = 60.0


@dataclass(frozen=True)
class HeldBack:
    """A partition whose last range failed as a whole; it is read again from `start` after
    `until` (monotonic clock)."""

    topic: str
    partition: int
    start: int
    reason: str
    failures: int
    until: float


def apply_each_partition(cur, stream: LedgerPositionedStream,
                         polled: list[tuple[OffsetRangeConfig, list]],
                         apply_range: Callable[[OffsetRangeConfig, list], None]) -> None:
    """Apply each partition's range of a poll in a savepoint of the caller's transaction. A range
    that fails as a whole — what the item guard leaves: a lock or statement timeout, a
    conflict — is held back (`LedgerPositionedStream.hold_back`) while the other partitions are
    applied; only a lost connection fails the poll. (What was applied is what the ledger handed
    out — the domain's stats say — not the polled range: a member evicted mid-batch and the
    partition's new owner may both poll it.)"""
    for rng, records in polled:
        try:
            with cur.connection.transaction():
                apply_range(rng, records)
        except Exception as error:  # noqa: BLE001 — one partition must not stop the others
            if cur.connection.closed or cur.connection.broken:
                raise
            held = stream.hold_back(rng, failure_reason("range", error))
            log.warning("%s: partition %s[%d] held back after %d failure(s): %s",
                        stream.consumer_name, rng.topic, rng.partition, held.failures,
                        held.reason)
            continue
        stream.applied(rng)


def lag_from(bounds: dict[tuple[str, int], tuple[int, int]],
             positions: dict[tuple[str, int], int]) -> KafkaLag:
    """Records retained in Kafka at or after each partition's position (pure)."""
    behind = {tp: end - max(positions.get(tp, begin), begin)
              for tp, (begin, end) in bounds.items()}
    behind = {tp: n for tp, n in behind.items() if n > 0}
    return KafkaLag(sum(behind.values()), len(behind), len(bounds))


def ledger_lag(kafka: KafkaResource, cur, consumer: str, topic_pattern: str) -> KafkaLag:
    """How far the ledger of `consumer` is behind the end of the topics matching the pattern."""
    bounds = {(tp.topic, tp.partition): b
              for tp, b in kafka.offset_bounds(kafka.topics_matching(topic_pattern)).items()}
    applied = offset_ledger.next_offsets(cur, consumer, {tp: b for tp, (b, _) in bounds.items()})
    return lag_from(bounds, applied)


def ledger_lag_report(kafka: KafkaResource, postgres, ensure_schema: Callable,
                      consumer: str, topic_pattern: str, max_events: int) -> LagReport:
    """A source's whole lag (whichever workers apply it) judged against `max_events`; the
    domain's schema is made sure of first (`ensure_schema(cur, postgres)`)."""
    with postgres.transaction() as cur:
        ensure_schema(cur, postgres)
        lag = ledger_lag(kafka, cur, consumer, topic_pattern)
    return lag.report(max_events)


class LedgerPositionedStream:
    """`open()`, then `poll()` returns [(range, records)] per partition with new records;
    `close()` at the end. Ledger marks are read in transactions from `transaction()`.

    Topics created later (a source system added, a fresh deployment) are picked up: every
    `discover_every_s` the topic list is read again, and new partitions join at their marks.
    """

    def __init__(self, kafka: KafkaResource, consumer_name: str,
                 topic_pattern: str | Callable[[], str],
                 transaction: Callable[[], AbstractContextManager], discover_every_s: float = 5.0,
                 consumer_group: str | None = None, stall_after_s: float = STALL_AFTER_S) -> None:
        self.kafka = kafka
        self.consumer_name = consumer_name
        self.topic_pattern = topic_pattern
        self.transaction = transaction
        self.discover_every_s = discover_every_s
        self.consumer_group = consumer_group
        self.stall_after_s = stall_after_s
        # The first of the polls in a row that brought nothing; None after one that read records.
        self._empty_since: float | None = None
        self._consumer: KafkaConsumer | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._discovered_at = 0.0
        self._subscribed: list[str] = []
        self._held_back: dict[TopicPartition, HeldBack] = {}

    def open(self) -> LedgerPositionedStream:
        """Take the matching partitions (all of them, or the group's share) at the ledger's
        marks."""
        # retry_backoff_ms: a poll that finds nothing fetchable sleeps this long (100 ms by
        # default) — the whole latency budget of a quiet partition.
        self._consumer = KafkaConsumer(
            **self.kafka.client_config(), **self._group_config(), enable_auto_commit=False,
            max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION, retry_backoff_ms=10,
            fetch_max_wait_ms=50, request_timeout_ms=REQUEST_TIMEOUT_MS)
        self._discover()
        return self

    def _group_config(self) -> dict:
        if self.consumer_group is None:
            return {"group_id": None}
        # earliest: a ledger mark below the log start (retention) reads from the log start.
        return {"group_id": self.consumer_group, "auto_offset_reset": "earliest",
                "partition_assignment_strategy": (CooperativeStickyAssignor,),
                "session_timeout_ms": GROUP_SESSION_TIMEOUT_MS,
                "max_poll_interval_ms": GROUP_MAX_POLL_INTERVAL_MS}

    def _matching_topics(self) -> list[str]:
        # A callable pattern is asked again at every discovery (a catalogue that gained a table).
        pattern = re.compile(self.topic_pattern() if callable(self.topic_pattern)
                             else self.topic_pattern)
        return sorted(t for t in self._consumer.topics()
                      if t.startswith(self.kafka.topic_prefix)
                      and pattern.fullmatch(self.kafka.logical_topic(t)))

    def _discover(self) -> None:
        """Take up topics that appeared since the last discovery: a group subscribes to the new
        list (Kafka then rebalances), a lone stream assigns itself their partitions."""
        self._discovered_at = time.monotonic()
        topics = self._matching_topics()
        if self.consumer_group is not None:
            if topics != self._subscribed:
                self._consumer.subscribe(topics=topics, listener=_LedgerRebalance(self))
                self._subscribed = topics
            return
        new = [TopicPartition(topic, p) for topic in topics
               for p in sorted(self._consumer.partitions_for_topic(topic) or ())
               if TopicPartition(topic, p) not in self._positions]
        if new:
            begin = self._consumer.beginning_offsets(new)
            self._consumer.assign([*self._positions, *new])
            for tp in self._positions:
                self._consumer.seek(tp, self._positions[tp])
            self._position_at_marks(new, begin)

    def _position_at_marks(self, partitions: list[TopicPartition],
                           begin: dict[TopicPartition, int] | None = None) -> None:
        """Seek each partition to the first offset the ledger has not applied (never below its
        log start when `begin` is known)."""
        begin = begin or {}
        with self.transaction() as cur:
            marks = offset_ledger.next_offsets(
                cur, self.consumer_name,
                {(tp.topic, tp.partition): begin.get(tp, 0) for tp in partitions})
        for tp in partitions:
            self._positions[tp] = max(marks[(tp.topic, tp.partition)], begin.get(tp, 0))
            self._consumer.seek(tp, self._positions[tp])

    def _forget(self, partitions: list[TopicPartition]) -> None:
        """The group moved these partitions to another member."""
        for tp in partitions:
            self._positions.pop(tp, None)
            self._held_back.pop(tp, None)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()

    def hold_back(self, rng: OffsetRangeConfig, reason: str) -> HeldBack:
        """Read `rng` again later: its partition is sought back to the range's start and paused
        for a backoff that doubles with each failure in a row (the other partitions go on)."""
        tp = TopicPartition(rng.topic, rng.partition)
        previous = self._held_back.get(tp)
        failures = previous.failures + 1 if previous else 1
        backoff = min(HOLD_BACK_FIRST_S * 2 ** (failures - 1), HOLD_BACK_MAX_S)
        held = HeldBack(rng.topic, rng.partition, rng.start, reason, failures,
                        time.monotonic() + backoff)
        self._held_back[tp] = held
        self._positions[tp] = rng.start
        self._consumer.seek(tp, rng.start)
        self._consumer.pause(tp)
        return held

    def applied(self, rng: OffsetRangeConfig) -> None:
        """`rng` was applied: its partition is no longer held back."""
        self._held_back.pop(TopicPartition(rng.topic, rng.partition), None)

    @property
    def held_back(self) -> list[HeldBack]:
        return list(self._held_back.values())

    def _resume_due(self) -> None:
        now = time.monotonic()
        due = [tp for tp, held in self._held_back.items() if held.until <= now]
        if due:
            self._consumer.resume(*due)

    def poll(self, timeout_ms: int = 100,
             max_records: int = 5000) -> list[tuple[OffsetRangeConfig, list]]:
        if time.monotonic() - self._discovered_at >= self.discover_every_s:
            self._discover()
        self._resume_due()
        if not self._positions and self.consumer_group is None:
            return []
        batches = []
        for tp, records in self._consumer.poll(timeout_ms=timeout_ms,
                                               max_records=max_records).items():
            if not records or tp not in self._positions:
                continue
            start, end = self._positions[tp], records[-1].offset + 1
            self._positions[tp] = end
            batches.append((OffsetRangeConfig(topic=tp.topic, partition=tp.partition,
                                              start=start, end=end),
                            [r for r in records if r.offset >= start]))
        if batches:
            self._empty_since = None
        elif self._empty_since is None:
            self._empty_since = time.monotonic()
        return batches

    def source_lag(self) -> KafkaLag:
        """How far the ledger is behind the end of every partition of the source: all group
        members' partitions, not only this one's."""
        partitions = [TopicPartition(topic, p) for topic in self._matching_topics()
                      for p in sorted(self._consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return KafkaLag(0, 0, 0)
        begin = self._consumer.beginning_offsets(partitions)
        end = self._consumer.end_offsets(partitions)
        bounds = {(tp.topic, tp.partition): (begin[tp], end[tp]) for tp in partitions}
        with self.transaction() as cur:
            applied = offset_ledger.next_offsets(
                cur, self.consumer_name, {tp: b for tp, (b, _) in bounds.items()})
        return lag_from(bounds, applied)

    def lag(self) -> KafkaLag:
        """Records in Kafka past what this stream has read. Raises `StalledConsumer` when polls
        have brought nothing for `stall_after_s` although partitions not held back have records
        to read."""
        if not self._positions:
            return KafkaLag(0, 0, 0)
        ends = self._consumer.end_offsets(list(self._positions))
        bounds = {(tp.topic, tp.partition): (0, ends[tp]) for tp in self._positions}
        lag = lag_from(bounds, {(tp.topic, tp.partition): p for tp, p in self._positions.items()})
        readable = sum(ends[tp] - p for tp, p in self._positions.items()
                       if tp not in self._held_back and ends[tp] > p)
        if not readable:
            self._empty_since = None  # nothing to read is not a stall
        elif (self._empty_since is not None
              and time.monotonic() - self._empty_since >= self.stall_after_s):
            raise StalledConsumer(f"{self.consumer_name}: polls brought nothing for "
                                  f"{self.stall_after_s:.0f} s while {readable} records are readable")
        return replace(lag, held_back=tuple(self._held_back.values()))


class _LedgerRebalance(ConsumerRebalanceListener):
    """Called inside `poll` when the group moves partitions: what this member gets is sought to
    the ledger's marks (only the ledger says what is applied; nothing is committed to Kafka)."""

    def __init__(self, stream: LedgerPositionedStream) -> None:
        self.stream = stream

    def on_partitions_revoked(self, revoked) -> None:
        self.stream._forget(list(revoked))

    def on_partitions_assigned(self, assigned) -> None:
        if assigned:
            self.stream._position_at_marks(sorted(assigned))
        log.info("%s: group %s assigned %d partition(s)", self.stream.consumer_name,
                 self.stream.consumer_group, len(assigned))
