"""Applying CDC change events to the stored state of source records — pure, no I/O.

Delivery rules this module is built on:

* Delivery is at-least-once: the same event can arrive twice, in the same batch or a later one,
  and a redelivered range can replay events older than what is stored.
* Order is guaranteed per key within a partition only. Events of different keys (and a table's
  truncate, which has no key) may interleave in any order across partitions.
* LSNs are not monotonic in emit order across keys and transactions, so they are not the primary
  ordering.

Versioning (`RecordVersion`):

* A version is the source commit time `ts_ms`, then the LSN. The LSN only breaks ties between
  changes of the same row committed in the same millisecond; successive changes of one row are
  serialised by the database, so their WAL positions follow their commit order.
* A table may name its own version column (e.g. `version` or `updated_at`: `version_column` in
  the source catalogue). When both versions being compared carry that column, it decides first.
* An event whose version is older than the stored one is stale and skipped: an older version
  never overwrites a newer one. An event of the same version is a duplicate when its identity
  (op, txId, LSN and a hash of its row) was already applied at that version; a different event of
  the same version (no LSN to tell them apart) is applied in Kafka order.
* A delete leaves a tombstone state carrying the delete's version, so a late, older update cannot
  resurrect the row; a newer create or update starts a new incarnation of the row, and
  `first_version` records when the current incarnation began (an insert always begins one).
* A truncate (`t`) sets a per-table watermark: every record of that table whose version is not
  newer is deleted, and later-arriving events that are not newer than the watermark are skipped.
* Kafka tombstones (null values) only confirm a delete; they change nothing.

Because every decision compares an event with the stored version, applying a stream event by
event, in one batch, in any batching, or with duplicates injected, gives the same final state.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, NamedTuple

from rag_assets.catalogue import active_catalogue
from rag_assets.customers.cdc_events import TOMBSTONE, ChangeEvent, KafkaPosition
from rag_assets.platform import json_codec


class RecordKey(NamedTuple):
    system: str
    table: str
    pk: str

    def __str__(self) -> str:
        return f"{self.system}.{self.table}:{self.pk}"

    @staticmethod
    def parse(text: str) -> RecordKey:
        """Inverse of `str(key)`: "system.table:pk" (system and table hold no '.' or ':'; the
        primary key may). Memoised: a linking batch parses every neighbour's key."""
        return _parse_record_key(text)


@lru_cache(maxsize=1 << 18)
def _parse_record_key(text: str) -> RecordKey:
    table_key, colon, pk = text.partition(":")
    system, dot, table = table_key.partition(".")
    if not (colon and dot and system and table):
        raise ValueError(f"not a record key (system.table:pk): {text!r}")
    return RecordKey(system, table, pk)


TableKey = tuple[str, str]


@dataclass(frozen=True)
class RecordVersion:
    """Version of a source row. `ts_ms` and `lsn` are -1 when unknown."""

    ts_ms: int
    lsn: int = -1
    column: int | float | str | None = None

    def compare(self, other: RecordVersion) -> int:
        """-1, 0 or 1 as self is older than, as old as, or newer than `other`."""
        mine, theirs = (self.ts_ms, self.lsn), (other.ts_ms, other.lsn)
        if _comparable_columns(self.column, other.column):
            mine, theirs = (self.column, *mine), (other.column, *theirs)
        return (mine > theirs) - (mine < theirs)

    def sort_key(self) -> tuple[int, int]:
        """A total order (ignores the version column) for ranking records by age."""
        return (self.ts_ms, self.lsn)


def _comparable_columns(a: Any, b: Any) -> bool:
    numeric = (int, float)
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return False
    return (isinstance(a, numeric) and isinstance(b, numeric)) or (
        isinstance(a, str) and isinstance(b, str)
    )


@dataclass(frozen=True)
class SourceRecord:
    """The stored state of one source row. `row` is None when the row is deleted."""

    key: RecordKey
    row: dict[str, Any] | None
    version: RecordVersion
    first_version: RecordVersion  # version that created the current incarnation
    position: KafkaPosition  # the event that produced this state (provenance)
    applied_at_version: frozenset[str] = frozenset()

    @property
    def deleted(self) -> bool:
        return self.row is None


class Outcome(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"  # older than the stored version
    TRUNCATED = "truncated"  # not newer than the table's truncate watermark
    CONFIRMATION = "confirmation"  # Kafka tombstone: confirms a delete, changes nothing
    ERASED = "erased"  # its record was erased on request (`erased_records.skip_erased`)


@dataclass
class StateChanges:
    """What a batch did: the final state of every record it changed, and each event's fate."""

    records: dict[RecordKey, SourceRecord] = field(default_factory=dict)
    watermarks: dict[TableKey, RecordVersion] = field(default_factory=dict)
    outcomes: list[tuple[ChangeEvent, Outcome]] = field(default_factory=list)
    # Every state a record passed through, in order (a truncate adds one per deleted record):
    # consumers that must not depend on batch boundaries replay these instead of `records`.
    transitions: list[SourceRecord] = field(default_factory=list)

    @property
    def applied(self) -> list[ChangeEvent]:
        return [event for event, outcome in self.outcomes if outcome is Outcome.APPLIED]

    @property
    def skipped(self) -> list[tuple[ChangeEvent, Outcome]]:
        return [(e, o) for e, o in self.outcomes if o is not Outcome.APPLIED]

    def counts(self) -> dict[str, int]:
        totals = {outcome.value: 0 for outcome in Outcome}
        for _, outcome in self.outcomes:
            totals[outcome.value] += 1
        return totals


def event_version(
    event: ChangeEvent, version_columns: Mapping[TableKey, str] | None = None
) -> RecordVersion:
    """(system, table) -> the table's own version column; default: the catalogue's (a table
    without one is versioned by ts_ms + LSN)."""
    if version_columns is None:
        version_columns = active_catalogue().version_columns
    column_name = version_columns.get((event.system, event.table))
    column = event.row.get(column_name) if column_name and event.row else None
    lsn = event.lsn if isinstance(event.lsn, int) and not isinstance(event.lsn, bool) else -1
    ts_ms = event.source_ts_ms if event.source_ts_ms is not None else -1
    return RecordVersion(ts_ms=ts_ms, lsn=lsn, column=column)


def event_identity(event: ChangeEvent) -> str:
    """Identity of an event for deduplication: the same change redelivered has the same one.
    (Identities stored before the digest moved from `json` to orjson text differ: such an event
    redelivered once more is applied again, to the same row, which changes nothing.)"""
    digest = hashlib.sha256(json_codec.dumps_for_digest(event.row)).hexdigest()[:16]
    return f"{event.op}|{event.tx_id}|{event.lsn}|{digest}"


def is_truncated(record: SourceRecord, watermark: RecordVersion | None) -> bool:
    """True when a table truncate at `watermark` deletes this record."""
    return watermark is not None and record.version.compare(watermark) <= 0


def apply_change_events(
    current: Mapping[RecordKey, SourceRecord],
    watermarks: Mapping[TableKey, RecordVersion],
    events: Iterable[ChangeEvent],
    version_columns: Mapping[TableKey, str] | None = None,
) -> StateChanges:
    """Apply `events` (in Kafka order) to the stored records of the keys they touch.

    `current` must hold the stored state of every key the events name (absent = never seen),
    and, for a truncate, whichever records of that table the caller wants tombstoned in the
    result; a store applies the returned watermark to the rest itself (see `is_truncated`).
    """
    if version_columns is None:
        version_columns = active_catalogue().version_columns
    records = dict(current)
    marks = dict(watermarks)
    changes = StateChanges()
    for event in events:
        outcome = _apply_one(records, marks, event, version_columns, changes)
        changes.outcomes.append((event, outcome))
    return changes


def _apply_one(
    records: dict[RecordKey, SourceRecord],
    marks: dict[TableKey, RecordVersion],
    event: ChangeEvent,
    version_columns: Mapping[TableKey, str],
    changes: StateChanges,
) -> Outcome:
    if event.op == TOMBSTONE:
        return Outcome.CONFIRMATION
    version = event_version(event, version_columns)
    table = (event.system, event.table)
    if event.op == "t":
        return _apply_truncate(records, marks, table, version, event.position, changes)
    watermark = marks.get(table)
    if watermark is not None and version.compare(watermark) <= 0:
        return Outcome.TRUNCATED
    key = RecordKey(event.system, event.table, event.pk)
    stored = records.get(key)
    identity = event_identity(event)
    if stored is not None:
        order = version.compare(stored.version)
        if order < 0:
            return Outcome.STALE
        if order == 0 and identity in stored.applied_at_version:
            return Outcome.DUPLICATE
        same_version = order == 0
    else:
        same_version = False
    updated = _next_state(key, stored, event, version, identity, same_version)
    records[key] = changes.records[key] = updated
    changes.transitions.append(updated)
    return Outcome.APPLIED


def _next_state(
    key: RecordKey,
    stored: SourceRecord | None,
    event: ChangeEvent,
    version: RecordVersion,
    identity: str,
    same_version: bool,
) -> SourceRecord:
    row = None if event.op == "d" else dict(event.row or {})
    # An insert always starts a new incarnation, even when a truncate that deleted the previous
    # one has not arrived yet from its partition.
    if row is None or event.op == "c" or stored is None or stored.deleted:
        first_version = version
    else:
        first_version = stored.first_version
    seen = (stored.applied_at_version | {identity}) if same_version and stored else {identity}
    return SourceRecord(
        key=key,
        row=row,
        version=version,
        first_version=first_version,
        position=event.position,
        applied_at_version=frozenset(seen),
    )


def _apply_truncate(
    records: dict[RecordKey, SourceRecord],
    marks: dict[TableKey, RecordVersion],
    table: TableKey,
    version: RecordVersion,
    position: KafkaPosition,
    changes: StateChanges,
) -> Outcome:
    previous = marks.get(table)
    if previous is not None and version.compare(previous) <= 0:
        return Outcome.DUPLICATE if version.compare(previous) == 0 else Outcome.STALE
    marks[table] = changes.watermarks[table] = version
    for key, record in list(records.items()):
        if (
            (key.system, key.table) == table
            and not record.deleted
            and is_truncated(record, version)
        ):
            deleted = replace(
                record,
                row=None,
                version=version,
                position=position,
                applied_at_version=frozenset({f"t|{version}"}),
            )
            records[key] = changes.records[key] = deleted
            changes.transitions.append(deleted)
    return Outcome.APPLIED


class SourceState:
    """In-memory source-record store: the reference implementation of the PostgreSQL one."""

    def __init__(self, version_columns: Mapping[TableKey, str] | None = None) -> None:
        self.records: dict[RecordKey, SourceRecord] = {}
        self.watermarks: dict[TableKey, RecordVersion] = {}
        self.version_columns = version_columns

    def apply(self, events: Iterable[ChangeEvent]) -> StateChanges:
        events = list(events)
        truncated = {(e.system, e.table) for e in events if e.op == "t"}
        touched = {RecordKey(e.system, e.table, e.pk) for e in events if e.op != "t"}
        current = {
            key: record
            for key, record in self.records.items()
            if key in touched or (key.system, key.table) in truncated
        }
        changes = apply_change_events(current, self.watermarks, events, self.version_columns)
        self.records.update(changes.records)
        self.watermarks.update(changes.watermarks)
        return changes

    def live_rows(self) -> dict[RecordKey, dict[str, Any]]:
        return {key: r.row for key, r in self.records.items() if r.row is not None}
