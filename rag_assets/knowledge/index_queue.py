"""Taking documents off the registry's queue into LanceDB, one writer at a time.

Shared by the `document_chunks` asset (runs) and the streaming sensor (micro-batches): the
writer lock, recording each document's outcome in the registry, and what the lineage says about
a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from rag_assets.knowledge import registry
from rag_assets.knowledge.indexing import Deleted, Failed, Indexed, Outcome, Rejected
from rag_assets.platform.dead_letters import store_dead_letters


def _writer_lock_key(db_schema: str) -> str:
    return f"kb-chunks-writer:{db_schema}"


def writer_lock(cur, db_schema: str) -> None:
    """One writer per table (DESIGN §4), held until the caller's transaction ends."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_writer_lock_key(db_schema),))


def try_writer_lock(cur, db_schema: str) -> bool:
    """The writer lock if it is free now (a streaming tick must not wait on a long rebuild)."""
    cur.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))", (_writer_lock_key(db_schema),))
    return bool(cur.fetchone()[0])


def record_outcomes(cur, outcomes: Sequence[Outcome], run_id: str) -> int:
    """Write each document's outcome to the registry; returns the dead letters stored."""
    letters = []
    for outcome in outcomes:
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
    return store_dead_letters(cur, letters, run_id)


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
