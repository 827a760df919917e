"""Taking documents off the registry's queue into LanceDB, one writer at a time.

Shared by the `document_chunks` asset (runs) and the streaming document workers
(micro-batches): the locks, recording each document's outcome in the registry, and what the
lineage says about a batch.

Three advisory locks, all transaction-scoped, so they die with their holder's connection:

* the **writer lock**: one LanceDB writer per table. A run holds it for its whole length; a
  document worker only while it commits vectors it embedded beforehand, without the lock;
* the **run lock**: held (exclusively) by runs besides the writer lock; workers take it shared
  for the moment they claim documents, so they leave the queue to a run, as the single stream
  always did;
* the **lister lock**: one listing of the prefix at a time (the others just index).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rag_assets.knowledge import registry
from rag_assets.knowledge.indexing import Deleted, Failed, Indexed, Outcome, Rejected
from rag_assets.customers.dead_letter_ties import ties_of
from rag_assets.platform.dead_letters import store_dead_letters

_LOCK_POLL_S = 0.02


def _key(name: str, db_schema: str) -> str:
    return f"{name}:{db_schema}"


def writer_lock(cur, db_schema: str) -> None:
    """A run's lock on the table, held until the caller's transaction ends: the
    writer lock, and the run lock that keeps workers from claiming meanwhile."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_key("kb-chunks-run", db_schema),))
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                (_key("kb-chunks-writer", db_schema),))


def try_writer_lock(cur, db_schema: str) -> bool:
    """The writer lock if it is free now."""
    cur.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))",
                (_key("kb-chunks-writer", db_schema),))
    return bool(cur.fetchone()[0])


def wait_for_writer_lock(cur, db_schema: str, timeout_s: float,
                         clock=time.monotonic, sleep=time.sleep) -> bool:
    """The writer lock within `timeout_s`. Polled rather than waited for with `lock_timeout`,
    whose expiry would abort the transaction the caller still needs (to release its claims)."""
    deadline = clock() + timeout_s
    while not try_writer_lock(cur, db_schema):
        if clock() >= deadline:
            return False
        sleep(_LOCK_POLL_S)
    return True


def no_run_in_progress(cur, db_schema: str) -> bool:
    """True, holding the run lock shared until the transaction ends, unless a run holds it."""
    cur.execute("SELECT pg_try_advisory_xact_lock_shared(hashtext(%s))",
                (_key("kb-chunks-run", db_schema),))
    return bool(cur.fetchone()[0])


def try_lister_lock(cur, db_schema: str) -> bool:
    cur.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))",
                (_key("kb-lister", db_schema),))
    return bool(cur.fetchone()[0])


def split_current(cur, outcomes: Sequence[Outcome]) -> tuple[list[Outcome], list[Outcome]]:
    """(outcomes of documents still at the version their worker claimed, stale ones). Under the
    writer lock: the rows stay locked until the commit, so what is written is the registry's
    current version and an older one can never overwrite a newer one."""
    versions = registry.lock_current_versions(cur, [outcome.item.key for outcome in outcomes])
    current = [outcome for outcome in outcomes if registry.is_current(outcome.item, versions)]
    stale = [outcome for outcome in outcomes if not registry.is_current(outcome.item, versions)]
    return current, stale


def record_outcomes(cur, outcomes: Sequence[Outcome], run_id: str) -> int:
    """Write each document's outcome to the registry; returns the dead letters stored."""
    letters = []
    for outcome in sorted(outcomes, key=lambda outcome: outcome.item.key):  # rows in key order
        item = outcome.item
        if isinstance(outcome, Indexed):
            registry.mark_indexed(
                cur, item, etag=outcome.etag, version_id=outcome.version_id, size=outcome.size,
                content_hash=outcome.content_hash, served_version=outcome.document_version,
                chunk_count=len(outcome.rows), run_id=run_id)
        elif isinstance(outcome, Rejected):
            registry.mark_rejected(
                cur, item, etag=outcome.etag, version_id=outcome.version_id, size=outcome.size,
                content_hash=outcome.content_hash, reason=outcome.reason, run_id=run_id)
            letters.append(outcome.dead_letter)
        elif isinstance(outcome, Failed):
            registry.mark_failed(cur, item, reason=outcome.reason, run_id=run_id)
        elif isinstance(outcome, Deleted):
            registry.remove(cur, item)
    return store_dead_letters(cur, letters, run_id, ties_of=ties_of)


def outcome_lineage(outcomes: Sequence[Outcome]) -> list[dict]:
    """Each document of a batch with the version now served (or why not), for metadata."""
    lineage = []
    for outcome in outcomes:
        entry = {"doc_key": outcome.item.key, "outcome": type(outcome).__name__.lower()}
        if isinstance(outcome, Indexed):
            entry.update(doc_version=outcome.document_version, chunks=len(outcome.rows),
                         chunks_embedded=outcome.chunks_embedded)
        lineage.append(entry)
    return lineage
