"""The PostgreSQL store of source-record state: loads what a batch touches, saves what changed.

`source_state.apply_change_events` decides; this module only moves `SourceRecord`s in and out
of the `source_records` and `table_truncations` tables, and queues changed records for the
identity graph in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from psycopg.types.json import Jsonb

from rag_assets.customers.cdc_events import KafkaPosition
from rag_assets.customers.source_state import (
    RecordKey,
    RecordVersion,
    SourceRecord,
    StateChanges,
    TableKey,
)
from rag_assets.platform.db import fill_scratch_table
from rag_assets.platform.work_queue import QUEUE_RECORD_AGAIN

_COLUMNS = ("system, table_name, pk, row_data, version, first_version, applied_ids, topic,"
            " partition, \"offset\"")
_SCRATCH_COLUMNS = ("system text, table_name text, pk text, row_data jsonb, version jsonb,"
                    " first_version jsonb, applied_ids text[], topic text, partition integer,"
                    " \"offset\" bigint")  # _COLUMNS with their types


def _version_json(version: RecordVersion) -> Jsonb:
    return Jsonb({"ts_ms": version.ts_ms, "lsn": version.lsn, "column": version.column})


def _version(value: dict) -> RecordVersion:
    return RecordVersion(ts_ms=value["ts_ms"], lsn=value["lsn"], column=value.get("column"))


def _record(row: tuple) -> SourceRecord:
    system, table, pk, data, version, first, applied, topic, partition, offset = row
    return SourceRecord(
        key=RecordKey(system, table, pk), row=data, version=_version(version),
        first_version=_version(first), position=KafkaPosition(topic, partition, offset),
        applied_at_version=frozenset(applied),
    )


def load_records(cur, keys: Iterable[RecordKey], whole_tables: Iterable[TableKey] = ()) -> dict[RecordKey, SourceRecord]:
    """The stored state of `keys`, plus every record of `whole_tables` (for truncates)."""
    keys = list(set(keys))
    found: dict[RecordKey, SourceRecord] = {}
    if keys:
        cur.execute(
            f"SELECT {_COLUMNS} FROM source_records"
            " WHERE (system, table_name, pk) IN (SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]))",
            ([k.system for k in keys], [k.table for k in keys], [k.pk for k in keys]),
        )
        found.update((r.key, r) for r in map(_record, cur.fetchall()))
    for system, table in set(whole_tables):
        cur.execute(f"SELECT {_COLUMNS} FROM source_records WHERE system = %s AND table_name = %s",
                    (system, table))
        found.update((r.key, r) for r in map(_record, cur.fetchall()))
    return found


def load_truncations(cur) -> dict[TableKey, RecordVersion]:
    cur.execute("SELECT system, table_name, version FROM table_truncations")
    return {(system, table): _version(version) for system, table, version in cur.fetchall()}


def save_changes(cur, changes: StateChanges) -> None:
    """Upsert every changed record and truncate watermark; queue the records for identity.
    The records go to a scratch table by COPY, from which one statement upserts them and one
    queues them, whatever their number."""
    records = list(changes.records.values())
    if records:
        fill_scratch_table(cur, "written_records", _SCRATCH_COLUMNS, (
            (r.key.system, r.key.table, r.key.pk, None if r.row is None else Jsonb(r.row),
             _version_json(r.version), _version_json(r.first_version),
             sorted(r.applied_at_version), r.position.topic, r.position.partition,
             r.position.offset)
            for r in records))
        cur.execute(
            f"INSERT INTO source_records ({_COLUMNS}) SELECT {_COLUMNS} FROM written_records"
            " ON CONFLICT (system, table_name, pk) DO UPDATE SET row_data = EXCLUDED.row_data,"
            " version = EXCLUDED.version, first_version = EXCLUDED.first_version,"
            " applied_ids = EXCLUDED.applied_ids, topic = EXCLUDED.topic,"
            " partition = EXCLUDED.partition, \"offset\" = EXCLUDED.\"offset\", updated_at = now()")
        cur.execute(
            "INSERT INTO identity_pending (system, table_name, pk)"
            f" SELECT system, table_name, pk FROM written_records{QUEUE_RECORD_AGAIN}")
    cur.executemany(
        "INSERT INTO table_truncations (system, table_name, version) VALUES (%s, %s, %s)"
        " ON CONFLICT (system, table_name) DO UPDATE SET version = EXCLUDED.version",
        [(s, t, _version_json(v)) for (s, t), v in changes.watermarks.items()],
    )


def clear(cur) -> None:
    """Forget all source-record state (a rebuild starts from the topics again)."""
    cur.execute("TRUNCATE source_records, table_truncations, identity_pending")


def live_rows(cur) -> dict[RecordKey, dict]:
    cur.execute("SELECT system, table_name, pk, row_data FROM source_records WHERE row_data IS NOT NULL")
    return {RecordKey(s, t, pk): data for s, t, pk, data in cur.fetchall()}


# --------------------------------------------------------------------------- by record key text

# (system, table_name, pk) IN the three arrays given as parameters (`key_arrays`).
KEY_IN_ARRAYS = ("(system, table_name, pk) IN"
                 " (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))")


def key_arrays(keys: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    """Record keys ("system.table:pk") as the three array parameters of `KEY_IN_ARRAYS`."""
    parts = [RecordKey.parse(key) for key in sorted(keys)]
    return [p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts]


def stored_keys(cur, keys: Iterable[str]) -> set[str]:
    """Those of the record keys that have a row in `source_records` (live or deleted)."""
    return set(rows_by_key(cur, keys))


def rows_by_key(cur, keys: Iterable[str]) -> dict[str, dict | None]:
    """Record key text -> its stored row data (None for a deleted record)."""
    keys = list(keys)
    if not keys:
        return {}
    cur.execute(f"SELECT system, table_name, pk, row_data FROM source_records"
                f" WHERE {KEY_IN_ARRAYS}", key_arrays(keys))
    return {f"{s}.{t}:{pk}": data for s, t, pk, data in cur.fetchall()}


def delete_records(cur, keys: Iterable[str]) -> int:
    """Delete the records (and their place in the identity queue); how many records went."""
    arrays = key_arrays(keys)
    cur.execute(f"DELETE FROM source_records WHERE {KEY_IN_ARRAYS}", arrays)
    deleted = cur.rowcount
    cur.execute(f"DELETE FROM identity_pending WHERE {KEY_IN_ARRAYS}", arrays)
    return deleted
