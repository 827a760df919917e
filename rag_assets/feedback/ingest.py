"""Applying offset ranges of `app.feedback`, exactly once in effect.

One range is applied inside the caller's PostgreSQL transaction: the ledger claim, the dead
letters, the registry of lake objects written, the accepted turns, the new watermark frontier and
the too-late counts all commit together or not at all. The Parquet objects are written to S3
before the commit under names fixed by the offsets, so a retry overwrites them.

KPI windows are not queued here for accepted turns: `feedback_scored` queues them once it has
given the turns their satisfaction. Too-late deliveries queue their windows here, so the
`dropped_late` column of an existing KPI row is refreshed.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from rag_assets.catalogue import active_catalogue
from rag_assets.feedback.suppression import suppression_list
from rag_assets.feedback import kpi_store, lake_store, turn_store, watermark_store
from rag_assets.feedback.events import (
    DEAD_LETTER_SOURCE,
    FeedbackEvent,
    RejectReason,
    parse_feedback_record,
    reason_code,
)
from rag_assets.feedback.windows import Arrival, LatenessPolicy, classify_batch, windows_of
from rag_assets.platform import offset_ledger
from rag_assets.customers.dead_letter_ties import ties_of
from rag_assets.platform.dead_letters import DeadLetter, store_dead_letters
from rag_assets.platform.erasure_lock import lock_for_writing
from rag_assets.platform.item_guard import apply_in_transaction
from rag_assets.platform.kafka_ingest import OffsetRangeConfig, claim_range, parts_of
from resources.kafka import KafkaResource
from resources.s3 import S3Storage

CONSUMER = "conversation_log"
FETCH_BYTES_PER_PARTITION = 512 * 1024
FEEDBACK_TOPIC_PATTERN = re.escape(active_catalogue().feedback_topic)


@dataclass
class IngestStats:
    events_read: int = 0
    arrivals: Counter = field(default_factory=Counter)
    dead_letters_stored: int = 0
    dead_letter_reasons: Counter = field(default_factory=Counter)
    ranges_applied: int = 0
    ranges_already_applied: int = 0
    lake_objects_written: int = 0
    lake_rows_written: int = 0
    turns_inserted: int = 0
    erased_skipped: int = 0
    too_late_windows: set = field(default_factory=set)
    latest_event_time: datetime | None = None
    seconds: Counter = field(default_factory=Counter)  # wall time per stage
    # The ledger parts this work applied: a range polled by two group members is claimed once.
    claimed: list[OffsetRangeConfig] = field(default_factory=list)

    def add(self, other: IngestStats) -> None:
        """Count `other`'s work in this one (a batch applied with fresh stats, then kept)."""
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if name == "latest_event_time":
                value = max((t for t in (mine, value) if t is not None), default=None)
            elif name == "too_late_windows":
                value = mine | value
            else:
                value = mine + value
            setattr(self, name, value)

    def metadata(self) -> dict:
        return {
            "events_read": self.events_read,
            "events_accepted": self.arrivals[Arrival.ON_TIME] + self.arrivals[Arrival.LATE_ACCEPTED],
            "events_on_time": self.arrivals[Arrival.ON_TIME],
            "events_late_accepted": self.arrivals[Arrival.LATE_ACCEPTED],
            "events_too_late": self.arrivals[Arrival.TOO_LATE],
            "duplicates_skipped": self.arrivals[Arrival.DUPLICATE],
            "erased_skipped": self.erased_skipped,
            "dead_letters": sum(self.dead_letter_reasons.values()),
            "dead_letters_new": self.dead_letters_stored,
            "ranges_applied": self.ranges_applied,
            "ranges_already_applied": self.ranges_already_applied,
            "lake_objects_written": self.lake_objects_written,
            "lake_rows_written": self.lake_rows_written,
            "turns_inserted": self.turns_inserted,
            "windows_with_late_drops": len(self.too_late_windows),
            **{f"seconds_{stage}": round(value, 3) for stage, value in sorted(self.seconds.items())},
        }


def parse_records(kafka: KafkaResource, records: list) -> tuple[list[FeedbackEvent], list[DeadLetter]]:
    events, letters = [], []
    for record in records:
        parsed = parse_feedback_record(kafka.logical_topic(record.topic), record.partition,
                                       record.offset, record.value)
        (letters if isinstance(parsed, DeadLetter) else events).append(parsed)
    return events, letters


def prefetch(kafka: KafkaResource, ranges: list[OffsetRangeConfig],
             timeout_s: float = 60.0) -> dict[tuple[str, int], list]:
    """Every record of the (bounded) ranges of a sensor run, read with a single consumer.

    One consumer for all partitions saves a connection and metadata round trip per range,
    which costs more than reading a few thousand records.
    """
    from kafka import TopicPartition

    wanted = {(r.topic, r.partition): (r.start, r.end) for r in ranges if r.end > r.start}
    records: dict[tuple[str, int], list] = {key: [] for key in wanted}
    if not wanted:
        return records
    partitions = {key: TopicPartition(*key) for key in wanted}
    # retry_backoff_ms: kafka-python sleeps that long (default 100 ms) whenever a poll finds
    # nothing fetchable yet — always once right after assign/seek, before the first fetch.
    # max_partition_fetch_bytes: small fetches stop near the range's end; with 8 MB a 5,000-record
    # range fetched (and kafka-python decoded) up to three times as many records past its end.
    # A record batch larger than this is still returned whole (KIP-74).
    with kafka.consumer(max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION,
                        retry_backoff_ms=10) as consumer:
        consumer.assign(list(partitions.values()))
        for key, tp in partitions.items():
            consumer.seek(tp, wanted[key][0])
        open_keys = set(wanted)
        deadline = time.monotonic() + timeout_s
        while open_keys:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read the ranges of {sorted(open_keys)}")
            for tp, batch in consumer.poll(timeout_ms=500, max_records=20_000).items():
                start, end = wanted[(tp.topic, tp.partition)]
                records[(tp.topic, tp.partition)].extend(
                    r for r in batch if start <= r.offset < end)
            for key in list(open_keys):
                if consumer.position(partitions[key]) >= wanted[key][1]:
                    open_keys.discard(key)
                    consumer.pause(partitions[key])
    return records


def apply_range(cur, kafka: KafkaResource, s3: S3Storage, s3_client, rng: OffsetRangeConfig,
                policy: LatenessPolicy, stats: IngestStats, run_id: str | None = None,
                prefetched: list | None = None) -> None:
    """Apply the not-yet-applied parts of one range inside the caller's transaction.

    `prefetched` may hold the range's records already read (see `prefetch`). A turn whose
    storing fails on its own is set aside as a dead letter, the others are stored (item_guard);
    the lake objects of the part are written once, after that, without the turns set aside.
    """
    lock_for_writing(cur)  # before the claim, and the suppression list is read under it
    with _timed(stats, "kafka_read"):
        claimed = claim_range(cur, CONSUMER, rng, run_id, kafka.read_range, prefetched)
    if claimed is None:
        stats.ranges_already_applied += 1
        return
    parts, records = claimed.parts, claimed.records
    stats.claimed += parts_of(rng, parts)
    stats.events_read += len(records)
    with _timed(stats, "parse"):
        events, letters = parse_records(kafka, records)
    erased = suppression_list(cur)
    if erased:
        # Turns of a customer who asked to be forgotten never land again (a redelivery or a
        # rebuild from the topic would otherwise bring them back).
        kept = [e for e in events if not erased.matches(e.customer_ref)]
        stats.erased_skipped += len(events) - len(kept)
        events = kept
    topic = kafka.logical_topic(rng.topic)

    stored, set_aside = apply_in_transaction(
        cur, events, lambda part, counts: _store_turns(cur, part, (topic, rng.partition), policy,
                                                       counts, run_id),
        IngestStats, "feedback apply")
    stats.add(stored)
    aside = {id(a.item) for a in set_aside}
    with _timed(stats, "lake_write"):
        for part in parts:
            _land(cur, s3, s3_client, [e for e in events if id(e) not in aside
                                       and part[0] <= e.offset < part[1]],
                  topic, rng.partition, part, stats, run_id)
    payloads = {r.offset: r.value for r in records}
    letters += [DeadLetter(DEAD_LETTER_SOURCE, f"{RejectReason.UNPROCESSABLE}: {aside.reason}",
                           payloads.get(aside.item.offset), aside.item.topic,
                           aside.item.partition, aside.item.offset,
                           customer_ref=aside.item.customer_ref) for aside in set_aside]
    stats.dead_letters_stored += store_dead_letters(cur, letters, run_id, ties_of=ties_of)
    stats.dead_letter_reasons.update(reason_code(letter.reason) for letter in letters)
    stats.ranges_applied += 1


def _store_turns(cur, events: list[FeedbackEvent], partition_key: tuple[str, int],
                 policy: LatenessPolicy, stats: IngestStats, run_id: str | None) -> None:
    """Classify the turns against the partition's watermark and store the accepted ones."""
    with _timed(stats, "classify"):
        before = watermark_store.load(cur, [partition_key])
        applied = turn_store.applied_turn_keys(cur, (e.turn_key for e in events))
        outcome = classify_batch(events, before, policy, applied)
    with _timed(stats, "store_turns"):
        stats.turns_inserted += turn_store.insert_turns(cur, outcome.accepted, run_id)
    watermark_store.save(cur, before, outcome.state)
    too_late = outcome.events(Arrival.TOO_LATE)
    if too_late:
        kpi_store.add_late_drops(cur, too_late)
        late_windows = {w for e in too_late for w in windows_of(e.ts)}
        kpi_store.queue_windows(cur, late_windows)
        stats.too_late_windows |= late_windows
    stats.arrivals.update(outcome.counts())
    stats.latest_event_time = outcome.state.frontier(partition_key)


@contextmanager
def _timed(stats: IngestStats, stage: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        stats.seconds[stage] += time.perf_counter() - started


def _land(cur, s3: S3Storage, client, events: list[FeedbackEvent], topic: str, partition: int,
          part: tuple[int, int], stats: IngestStats, run_id: str | None) -> None:
    """Write the lake objects of a claimed part, skipping offsets that already landed."""
    for start, end in lake_store.unlanded_parts(cur, topic, partition, part):
        inside = [e for e in events if start <= e.offset < end]
        objects, rows = lake_store.write_range(cur, s3, client, inside, topic, partition,
                                               (start, end), run_id)
        stats.lake_objects_written += objects
        stats.lake_rows_written += rows


def reset_for_rebuild(cur) -> None:
    """Forget the applied state so every retained offset is applied again.

    The lake registry is kept: offsets that already landed are not written twice, and objects
    whose offsets Kafka no longer retains stay. KPI windows that exist now are queued so rows
    that the replay no longer supports are removed.
    """
    kpi_store.queue_every_window(cur)
    turn_store.clear(cur)
    watermark_store.clear(cur)
    kpi_store.clear_late_drops(cur)
    offset_ledger.forget(cur, CONSUMER)
