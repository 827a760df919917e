"""Keeping the stored Customer 360 in step with a catalogue that changed on a running deployment.

`catalogue_tables` keeps, per source table, a digest of what its catalogue entry says its
records mean (identity columns, profile role, the default phone region). `sync_catalogue`
compares the catalogue in force with it, in the caller's transaction:

* a table whose digest changed has every record queued in `identity_pending`, in the same
  transaction that stores the new digest: the records are re-extracted and relinked once, and
  their customers' profiles rebuilt (the linking batches then report it as materialisations);
* a table new to the catalogue is recorded (its records are queued as they arrive);
* a table that left the catalogue while records of it are stored is refused
  (`RemovedSourceHasRecords`): its records would otherwise keep shaping customers no catalogue
  describes. `drop_source` removes them (and relinks what they touched) when that is meant.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache

from rag_assets.catalogue import Catalogue, active_catalogue
from rag_assets.catalogue.model import TableKey
from rag_assets.platform.work_queue import QUEUE_RECORD_AGAIN


class RemovedSourceHasRecords(RuntimeError):
    """A table left the catalogue while the product still holds records of it."""


@dataclass
class SyncResult:
    requeued: dict[str, int] = field(default_factory=dict)  # table -> records queued again
    added: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # left the catalogue with no records


@lru_cache(maxsize=8)
def table_digests(catalogue: Catalogue) -> dict[TableKey, str]:
    """Per table, a digest of what the catalogue says its records mean."""
    digests = {}
    for table in catalogue.tables:
        meaning = {"identity": dataclasses.asdict(table.identity),
                   "profile": dataclasses.asdict(table.profile),
                   "phone_region": catalogue.default_phone_region}
        text = json.dumps(meaning, sort_keys=True, default=sorted)
        digests[table.key] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return digests


def sync_catalogue(cur, catalogue: Catalogue | None = None) -> SyncResult:
    catalogue = catalogue or active_catalogue()
    wanted = table_digests(catalogue)
    result = SyncResult()
    # Every link batch checks; only a change takes the rows' locks, which would otherwise make
    # concurrent linkers wait for each other's commits here.
    if _stored_digests(cur, lock=False) == wanted:
        return result
    stored = _stored_digests(cur, lock=True)
    if stored == wanted:
        return result
    _refuse_removed_with_records(cur, catalogue, set(stored) - set(wanted), result)
    for key, digest in wanted.items():
        if stored.get(key) == digest:
            continue
        if key in stored:
            result.requeued[f"{key[0]}.{key[1]}"] = _queue_table(cur, key)
        else:
            result.added.append(f"{key[0]}.{key[1]}")
        cur.execute(
            "INSERT INTO catalogue_tables (system, table_name, digest) VALUES (%s, %s, %s)"
            " ON CONFLICT (system, table_name) DO UPDATE SET digest = EXCLUDED.digest,"
            " changed_at = now()", (*key, digest))
    return result


def _stored_digests(cur, lock: bool) -> dict[TableKey, str]:
    if lock:
        cur.execute("SELECT system, table_name, digest FROM catalogue_tables FOR UPDATE")
    else:
        cur.execute("SELECT system, table_name, digest FROM catalogue_tables")
    return {(system, table): digest for system, table, digest in cur.fetchall()}


def _refuse_removed_with_records(cur, catalogue: Catalogue, removed: set[TableKey],
                                 result: SyncResult) -> None:
    for system, table in sorted(removed):
        cur.execute("SELECT count(*) FROM source_records WHERE system = %s AND table_name = %s"
                    " AND row_data IS NOT NULL", (system, table))
        (records,) = cur.fetchone()
        if records:
            raise RemovedSourceHasRecords(
                f"table {system}.{table} is no longer in {catalogue.path}, but {records} of its "
                f"records are stored: put it back, or remove them with `rag-assets sources drop "
                f"{system}.{table} --yes`")
        cur.execute("DELETE FROM catalogue_tables WHERE system = %s AND table_name = %s",
                    (system, table))
        result.dropped.append(f"{system}.{table}")


def _queue_table(cur, key: TableKey) -> int:
    cur.execute(
        "INSERT INTO identity_pending (system, table_name, pk) SELECT system, table_name, pk"
        f" FROM source_records WHERE system = %s AND table_name = %s{QUEUE_RECORD_AGAIN}", key)
    return cur.rowcount


def drop_source(cur, system: str, table: str) -> int:
    """Remove every stored record of a table and queue them, so the identity graph lets go of
    them and their customers' profiles are rebuilt; returns how many records were removed."""
    _queue_table(cur, (system, table))
    cur.execute("DELETE FROM source_records WHERE system = %s AND table_name = %s",
                (system, table))
    removed = cur.rowcount
    cur.execute("DELETE FROM table_truncations WHERE system = %s AND table_name = %s",
                (system, table))
    cur.execute("DELETE FROM catalogue_tables WHERE system = %s AND table_name = %s",
                (system, table))
    return removed
