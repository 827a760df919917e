"""Applying offset ranges of CDC topics to source-record state, exactly once in effect.

Each range is applied in one PostgreSQL transaction together with its ledger claim and its
dead letters: a run killed half-way leaves nothing, and a range applied before is skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from functools import lru_cache

from rag_assets.catalogue import Catalogue, active_catalogue
from rag_assets.customers.cdc_events import (
    TOMBSTONE,
    CdcParserConfig,
    ChangeEvent,
    TableRoute,
    parse_cdc_record,
)
from rag_assets.customers.erased_records import skip_erased, with_erased_outcomes
from rag_assets.customers.source_state import RecordKey, apply_change_events
from rag_assets.customers import source_store
from rag_assets.customers.dead_letter_ties import ties_of
from rag_assets.platform.dead_letters import DeadLetter, store_dead_letters
from rag_assets.platform.erasure_lock import lock_for_writing
from rag_assets.platform.item_guard import apply_in_transaction
from rag_assets.platform.kafka_ingest import OffsetRangeConfig, claim_range, parts_of
from resources.kafka import KafkaResource

CONSUMER = "source_records"


def cdc_topic_pattern(catalogue: Catalogue | None = None) -> str:
    """The regular expression over every topic read as CDC (the catalogue in force by default)."""
    return (catalogue or active_catalogue()).topic_pattern


def parser_config(catalogue: Catalogue | None = None) -> CdcParserConfig:
    """How to parse the CDC topics of a catalogue (the one in force by default). An event of a
    topic no table claims is a dead letter ("not a known source table"), replayable once the
    catalogue names its table."""
    return _parser_config(catalogue or active_catalogue())


@lru_cache(maxsize=8)
def _parser_config(catalogue: Catalogue) -> CdcParserConfig:
    @lru_cache(maxsize=4096)
    def routes(topic: str) -> tuple[TableRoute, ...]:
        return tuple(TableRoute(t.system, t.table, t.source_table, t.primary_key, t.envelope)
                     for t in catalogue.tables_of_topic(topic))

    return CdcParserConfig(routes=routes, catalogue_path=catalogue.path)


@dataclass
class ApplyStats:
    events_read: int = 0
    outcomes: Counter = field(default_factory=Counter)
    dead_letters: int = 0
    ranges_applied: int = 0
    ranges_already_applied: int = 0
    records_changed: int = 0
    tables: Counter = field(default_factory=Counter)
    # The ledger parts this work applied: a range polled by two group members is claimed once.
    claimed: list[OffsetRangeConfig] = field(default_factory=list)

    def add(self, other: ApplyStats) -> None:
        """Count `other`'s work in this one (a batch applied with fresh stats, then kept)."""
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)

    def metadata(self) -> dict:
        return {
            "events_read": self.events_read,
            "events_applied": self.outcomes["applied"],
            "duplicates_skipped": self.outcomes["duplicate"],
            "stale_skipped": self.outcomes["stale"] + self.outcomes["truncated"],
            "erased_skipped": self.outcomes["erased"],
            "dead_letters": self.dead_letters,
            "ranges_applied": self.ranges_applied,
            "ranges_already_applied": self.ranges_already_applied,
            "records_changed": self.records_changed,
        }


def _parse(kafka: KafkaResource, records: list, config: CdcParserConfig) -> tuple[list[ChangeEvent], list[DeadLetter]]:
    events, letters = [], []
    for record in records:
        parsed = parse_cdc_record(kafka.logical_topic(record.topic), record.partition,
                                  record.offset, record.key, record.value, config)
        (letters if isinstance(parsed, DeadLetter) else events).append(parsed)
    return events, letters


def apply_events(cur, events: list[ChangeEvent], stats: ApplyStats):
    """Apply parsed events (in Kafka order per key) to the stored state, in the caller's
    transaction: load what they touch, decide (`apply_change_events`), save what changed and
    queue it for the identity graph. Returns the `StateChanges` (outcome of every event).
    Events of records erased on request (`erased_records`) are skipped, counted as erased."""
    lock_for_writing(cur)
    everything, (events, _) = events, skip_erased(cur, events)
    keys = [RecordKey(e.system, e.table, e.pk) for e in events if e.op not in ("t", TOMBSTONE)]
    truncated = [(e.system, e.table) for e in events if e.op == "t"]
    changes = apply_change_events(
        source_store.load_records(cur, keys, truncated), source_store.load_truncations(cur), events
    )
    source_store.save_changes(cur, changes)
    changes.outcomes = with_erased_outcomes(everything, changes.outcomes)
    stats.outcomes.update(outcome.value for _, outcome in changes.outcomes)
    stats.records_changed += len(changes.records)
    stats.tables.update(f"{e.system}.{e.table}" for e in events)
    return changes


def apply_events_guarded(cur, events: list[ChangeEvent], stats: ApplyStats,
                         payloads: Mapping[int, bytes | None]) -> list[DeadLetter]:
    """`apply_events`, with any event whose application fails on its own set aside as a dead
    letter (its payload from `payloads`, by offset) while the others are applied (item_guard)."""
    applied, set_aside = apply_in_transaction(
        cur, events, lambda part, counts: apply_events(cur, part, counts), ApplyStats, "cdc apply")
    stats.add(applied)
    return [DeadLetter(source="cdc", reason=aside.reason,
                       payload=payloads.get(aside.item.position.offset),
                       topic=aside.item.position.topic, partition=aside.item.position.partition,
                       offset=aside.item.position.offset, record_key=_record_key(aside.item))
            for aside in set_aside]


def _record_key(event: ChangeEvent) -> str | None:
    return str(RecordKey(event.system, event.table, event.pk)) if event.pk else None


def apply_range(cur, kafka: KafkaResource, rng: OffsetRangeConfig, stats: ApplyStats,
                run_id: str | None = None, config: CdcParserConfig | None = None,
                prefetched: list | None = None, read: Callable[..., list] | None = None) -> None:
    """Apply the not-yet-applied part of one range inside the caller's transaction.

    `prefetched` may hold the range's records already read (a streaming sensor's poll); `read`
    reads the rest (`KafkaResource.read_range` by default, or a `range_reader` of the run)."""
    config = config or parser_config()
    lock_for_writing(cur)
    claimed = claim_range(cur, CONSUMER, rng, run_id, read or kafka.read_range, prefetched)
    if claimed is None:
        stats.ranges_already_applied += 1
        return
    stats.claimed += parts_of(rng, claimed.parts)
    records = claimed.records
    events, letters = _parse(kafka, records, config)
    letters += apply_events_guarded(cur, events, stats, {r.offset: r.value for r in records})
    stats.dead_letters += store_dead_letters(cur, letters, run_id, ties_of=ties_of)
    stats.events_read += len(records)
    stats.ranges_applied += 1
