"""The document registry in PostgreSQL: which version of every knowledge-base object we know of,
what LanceDB serves for it, and the queue of documents still to (re)index or delete.

All functions take a psycopg cursor inside the caller's transaction. A document key is data:
every statement is parameterised.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from rag_assets.knowledge.document_diff import (
    DEAD_LETTER_SOURCE,
    ChangeKind,
    DocumentChange,
    RegistryEntry,
    normalise_etag,
    parse_event_notification,
    resolve_events,
)
from rag_assets.platform.db import ensure_schema
from rag_assets.platform.dead_letters import DeadLetter
from rag_assets.platform.retry import retry_delay

KNOWLEDGE_SCHEMA_FILES = (("rag_assets.knowledge", "schema.sql"),)
STATUSES = ("pending", "deleting", "indexed", "rejected", "failed")


def ensure_knowledge_schema(cur, schema_name: str) -> None:
    ensure_schema(cur, schema_name, KNOWLEDGE_SCHEMA_FILES)


# --------------------------------------------------------------------------------------------
# Reading the registry for diffs
# --------------------------------------------------------------------------------------------


def _entries(rows) -> dict[str, RegistryEntry]:
    return {key: RegistryEntry(etag, version_id) for key, etag, version_id in rows}


def load_range(
    cur, prefix: str, after: str | None = None, upto: str | None = None
) -> dict[str, RegistryEntry]:
    """Known documents with prefix < key, `after` < key <= `upto` (byte order, as S3 lists).

    Documents queued for deletion are left out, so a key that reappears counts as created.
    """
    cur.execute(
        "SELECT doc_key, etag, version_id FROM kb_documents"
        " WHERE status <> 'deleting' AND starts_with(doc_key, %s)"
        " AND (%s::text IS NULL OR doc_key > %s::text COLLATE \"C\")"
        " AND (%s::text IS NULL OR doc_key <= %s::text COLLATE \"C\")",
        (prefix, after, after, upto, upto),
    )
    return _entries(cur.fetchall())


def load_keys(cur, keys: Iterable[str]) -> dict[str, RegistryEntry]:
    cur.execute(
        "SELECT doc_key, etag, version_id FROM kb_documents"
        " WHERE status <> 'deleting' AND doc_key = ANY(%s)",
        (sorted(set(keys)),),
    )
    return _entries(cur.fetchall())


# --------------------------------------------------------------------------------------------
# Registering changes (the `documents` asset)
# --------------------------------------------------------------------------------------------


@dataclass
class RegisterCounts:
    created: int = 0
    modified: int = 0
    deleted: int = 0
    unchanged: int = 0


def register_changes(
    cur, changes: Iterable[DocumentChange], run_id: str | None
) -> RegisterCounts:
    """Queue created/modified documents for indexing and deleted ones for removal.

    A change the registry already holds (same version, e.g. a redelivered notification or a
    request that raced with an earlier run) is counted as unchanged and leaves the row alone.
    """
    counts = RegisterCounts()
    # In key order, like every other writer of several rows, so two of them cannot deadlock.
    for change in sorted(changes, key=lambda change: change.key):
        if change.kind is ChangeKind.DELETED:
            cur.execute(
                "UPDATE kb_documents SET status = 'deleting', error = NULL, attempts = 0,"
                " next_attempt_at = NULL, seen_at = now(), updated_at = now(), run_id = %s"
                " WHERE doc_key = %s AND status <> 'deleting'",
                (run_id, change.key),
            )
            if cur.rowcount:
                counts.deleted += 1
            else:
                counts.unchanged += 1
            continue
        etag = normalise_etag(change.etag) or ""
        cur.execute(
            "INSERT INTO kb_documents AS d (doc_key, etag, version_id, size_bytes, status, run_id)"
            " VALUES (%s, %s, %s, %s, 'pending', %s)"
            " ON CONFLICT (doc_key) DO UPDATE SET etag = EXCLUDED.etag,"
            "   version_id = EXCLUDED.version_id, size_bytes = EXCLUDED.size_bytes,"
            "   status = 'pending', error = NULL, attempts = 0, next_attempt_at = NULL,"
            "   seen_at = now(), updated_at = now(), run_id = EXCLUDED.run_id"
            " WHERE d.status = 'deleting' OR NOT ("
            "   CASE WHEN d.version_id IS NOT NULL AND EXCLUDED.version_id IS NOT NULL"
            "        THEN d.version_id = EXCLUDED.version_id ELSE d.etag = EXCLUDED.etag END)"
            " RETURNING (xmax = 0) AS inserted",
            (change.key, etag, change.version_id, change.size, run_id),
        )
        row = cur.fetchone()
        if row is None:
            counts.unchanged += 1
        elif row[0] and change.kind is ChangeKind.CREATED:
            counts.created += 1
        else:
            counts.modified += 1
    return counts


# --------------------------------------------------------------------------------------------
# The work queue (the `document_chunks` asset)
# --------------------------------------------------------------------------------------------


_DUE = ("(status IN ('pending', 'deleting')"
        " OR (status = 'failed' AND next_attempt_at <= coalesce(%s, now())))")
_QUEUED_COLUMNS = "doc_key, status, etag, version_id, content_hash, served_version, attempts"
# Whole statements built once from the constants above (nothing of run time spliced into SQL).
_NEXT_BATCH = (f"SELECT {_QUEUED_COLUMNS} FROM kb_documents WHERE {_DUE}"
               " AND NOT (doc_key = ANY(%s)) ORDER BY seen_at, doc_key LIMIT %s")
_CLAIM_BATCH = (
    "UPDATE kb_documents AS d SET claimed_by = %s, claimed_backend = pg_backend_pid(),"
    "   claim_expires_at = now() + %s"
    " FROM (SELECT doc_key FROM kb_documents"
    f"       WHERE {_DUE} AND (claim_expires_at IS NULL OR claim_expires_at <= now()"
    "             OR NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = claimed_backend))"
    "       ORDER BY seen_at, doc_key LIMIT %s FOR UPDATE SKIP LOCKED) AS free"
    " WHERE d.doc_key = free.doc_key"
    f" RETURNING {', '.join('d.' + c for c in _QUEUED_COLUMNS.split(', '))}")


@dataclass(frozen=True)
class QueuedDocument:
    key: str
    status: str  # pending, deleting or failed
    etag: str
    version_id: str | None
    content_hash: str | None
    served_version: str | None
    attempts: int


def next_batch(
    cur, limit: int, exclude: Iterable[str] = (), now: datetime | None = None
) -> list[QueuedDocument]:
    """Queued documents, oldest first: pending, deleting, and failed ones whose backoff is over.
    (A run holding the writer lock takes them whether or not a document worker claimed them.)"""
    cur.execute(_NEXT_BATCH, (now, sorted(set(exclude)), limit))
    return [QueuedDocument(*row) for row in cur.fetchall()]


def claim_batch(
    cur, limit: int, worker: str, lease: timedelta, now: datetime | None = None
) -> list[QueuedDocument]:
    """Queued documents no live claim holds, oldest first, claimed for `worker` until the lease
    ends. Commit at once: the claim is then visible to the other workers. A claim is dead once its
    lease expired or once the backend of the session that took it is gone (a killed worker's
    connection closes with it; behind a transaction pooler that backend lives on, and the lease
    decides)."""
    cur.execute(
        _CLAIM_BATCH,
        (worker, lease, now, limit),
    )
    return sorted((QueuedDocument(*row) for row in cur.fetchall()), key=lambda item: item.key)


def renew_claims(cur, keys: Iterable[str], worker: str, lease: timedelta) -> None:
    cur.execute(
        "UPDATE kb_documents SET claim_expires_at = now() + %s"
        " WHERE doc_key = ANY(%s) AND claimed_by = %s",
        (lease, sorted(set(keys)), worker),
    )


def release_claims(cur, keys: Iterable[str], worker: str) -> None:
    cur.execute(
        "UPDATE kb_documents SET claimed_by = NULL, claimed_backend = NULL,"
        " claim_expires_at = NULL"
        " WHERE doc_key = ANY(%s) AND claimed_by = %s",
        (sorted(set(keys)), worker),
    )


def lock_current_versions(cur, keys: Iterable[str]) -> dict[str, tuple[str, str, str | None]]:
    """(status, etag, version_id) of each key's row, locked until the transaction ends (in key
    order, the order in which `register_changes` takes them), so no newer version can be
    registered between a worker's check and its commit."""
    cur.execute(
        "SELECT doc_key, status, etag, version_id FROM kb_documents WHERE doc_key = ANY(%s)"
        " ORDER BY doc_key FOR UPDATE",
        (sorted(set(keys)),),
    )
    return {key: (status, etag, version_id) for key, status, etag, version_id in cur.fetchall()}


def is_current(item: QueuedDocument, versions: Mapping[str, tuple]) -> bool:
    """The row still holds the version (and the status) the worker claimed."""
    return versions.get(item.key) == (item.status, item.etag, item.version_id)


def queued_summary(cur, now: datetime | None = None) -> dict[str, int]:
    """How much work waits: documents due now, and failed ones still backing off."""
    cur.execute(
        "SELECT count(*) FILTER (WHERE status IN ('pending', 'deleting')"
        "                          OR (status = 'failed' AND next_attempt_at <= coalesce(%s, now()))),"
        "       count(*) FILTER (WHERE status = 'failed' AND next_attempt_at > coalesce(%s, now()))"
        " FROM kb_documents",
        (now, now),
    )
    due, waiting = cur.fetchone()
    return {"due": int(due), "backing_off": int(waiting)}


def requeue_all(cur, run_id: str | None) -> int:
    """Queue every known document again (a rebuild); served chunks stay until replaced."""
    cur.execute(
        "UPDATE kb_documents SET status = 'pending', attempts = 0, next_attempt_at = NULL,"
        " seen_at = now(), updated_at = now(), run_id = %s"
        " WHERE status IN ('indexed', 'rejected', 'failed')",
        (run_id,),
    )
    return cur.rowcount


@dataclass(frozen=True)
class ListingTurn:
    due: bool  # False: another worker listed the prefix less than an interval ago
    start_after: str | None  # where the shared listing pass resumes


def listing_turn(cur, prefix: str, lister: str, interval: timedelta) -> ListingTurn:
    """Call under the lister lock (`index_queue.try_lister_lock`)."""
    cur.execute(
        "SELECT start_after, listed_by <> %s AND listed_at > now() - %s"
        " FROM kb_listing_cursor WHERE prefix = %s",
        (lister, interval, prefix),
    )
    row = cur.fetchone()
    if row is None:
        return ListingTurn(True, None)
    start_after, listed_recently_by_another = row
    return ListingTurn(not listed_recently_by_another, start_after)


def save_listing_cursor(cur, prefix: str, lister: str, start_after: str | None) -> None:
    cur.execute(
        "INSERT INTO kb_listing_cursor (prefix, start_after, listed_by) VALUES (%s, %s, %s)"
        " ON CONFLICT (prefix) DO UPDATE SET start_after = EXCLUDED.start_after,"
        " listed_by = EXCLUDED.listed_by, listed_at = now()",
        (prefix, start_after, lister),
    )


def all_keys(cur) -> set[str]:
    cur.execute("SELECT doc_key FROM kb_documents WHERE status <> 'deleting'")
    return {row[0] for row in cur.fetchall()}


# Outcomes are written only if the row still holds the version the indexer picked up; if a newer
# version was registered meanwhile, only what is now served is recorded and the row stays queued.
_STILL_QUEUED = "doc_key = %s AND etag = %s AND coalesce(version_id, '') = coalesce(%s, '')"


def mark_indexed(
    cur,
    item: QueuedDocument,
    *,
    etag: str,
    version_id: str | None,
    size: int | None,
    content_hash: str,
    served_version: str,
    chunk_count: int,
    run_id: str | None,
) -> None:
    cur.execute(
        "UPDATE kb_documents SET etag = %s, version_id = %s, size_bytes = %s, status = 'indexed',"
        " content_hash = %s, error = NULL, attempts = 0, next_attempt_at = NULL,"
        " served_version = %s, chunk_count = %s, indexed_at = now(), updated_at = now(),"
        f" run_id = %s WHERE {_STILL_QUEUED}",
        (etag, version_id, size, content_hash, served_version, chunk_count, run_id,
         item.key, item.etag, item.version_id),
    )
    if cur.rowcount == 0:
        cur.execute(
            "UPDATE kb_documents SET served_version = %s, chunk_count = %s, indexed_at = now(),"
            " updated_at = now() WHERE doc_key = %s",
            (served_version, chunk_count, item.key),
        )


def mark_rejected(
    cur,
    item: QueuedDocument,
    *,
    etag: str,
    version_id: str | None,
    size: int | None,
    content_hash: str | None,
    reason: str,
    run_id: str | None,
) -> None:
    """This version cannot be used; it is not retried until the object changes again."""
    cur.execute(
        "UPDATE kb_documents SET etag = %s, version_id = %s, size_bytes = %s, status = 'rejected',"
        " content_hash = %s, error = %s, attempts = 0, next_attempt_at = NULL,"
        f" updated_at = now(), run_id = %s WHERE {_STILL_QUEUED}",
        (etag, version_id, size, content_hash, reason, run_id, item.key, item.etag,
         item.version_id),
    )


def mark_failed(
    cur, item: QueuedDocument, *, reason: str, run_id: str | None, now: datetime | None = None
) -> datetime:
    """A transient failure: keep what is served, retry after an exponential backoff."""
    attempts = item.attempts + 1
    cur.execute(
        "UPDATE kb_documents SET status = 'failed', error = %s, attempts = %s,"
        " next_attempt_at = coalesce(%s, now()) + %s, updated_at = now(), run_id = %s"
        f" WHERE {_STILL_QUEUED} RETURNING next_attempt_at",
        (reason, attempts, now, retry_delay(attempts), run_id, item.key, item.etag,
         item.version_id),
    )
    row = cur.fetchone()
    return row[0] if row else None


def remove(cur, item: QueuedDocument) -> None:
    """The document's chunks are gone; forget it unless it was registered again meanwhile."""
    cur.execute(
        "DELETE FROM kb_documents WHERE doc_key = %s AND (status = 'deleting' OR"
        " (etag = %s AND coalesce(version_id, '') = coalesce(%s, '')))",
        (item.key, item.etag, item.version_id),
    )


# --------------------------------------------------------------------------------------------
# Summaries for metadata and checks (counts only: no document content)
# --------------------------------------------------------------------------------------------


def status_counts(cur) -> dict[str, int]:
    cur.execute("SELECT status, count(*) FROM kb_documents GROUP BY status")
    counts = {status: 0 for status in STATUSES}
    counts.update({status: int(n) for status, n in cur.fetchall()})
    return counts


def served_chunk_total(cur) -> int:
    cur.execute("SELECT coalesce(sum(chunk_count), 0) FROM kb_documents"
                " WHERE served_version IS NOT NULL")
    return int(cur.fetchone()[0])


def document_rows(cur, keys: Iterable[str] | None = None) -> dict[str, dict]:
    """Registry rows by key (all, or the given keys)."""
    cur.execute(
        "SELECT doc_key, etag, version_id, size_bytes, status, content_hash, error, attempts,"
        " next_attempt_at, served_version, chunk_count, indexed_at, run_id FROM kb_documents"
        " WHERE %s::text[] IS NULL OR doc_key = ANY(%s::text[])",
        (None if keys is None else sorted(set(keys)),) * 2,
    )
    columns = [c.name for c in cur.description]
    return {row[0]: dict(zip(columns, row, strict=True)) for row in cur.fetchall()}


def indexed_times(cur, versions: Mapping[str, str]) -> dict[str, datetime]:
    """When each (key → served version) was written, for the keys whose version still matches."""
    if not versions:
        return {}
    keys = sorted(versions)
    cur.execute(
        "SELECT doc_key, served_version, indexed_at FROM kb_documents WHERE doc_key = ANY(%s)",
        (keys,),
    )
    return {key: at for key, version, at in cur.fetchall()
            if at is not None and versions.get(key) == version}


# --------------------------------------------------------------------------------------------
# S3 event notifications (the `kb.s3-events` path)
# --------------------------------------------------------------------------------------------


@dataclass
class NotificationCounts:
    records: int = 0
    events: int = 0
    dead_letters: list = None  # list[DeadLetter]

    def __post_init__(self) -> None:
        self.dead_letters = self.dead_letters or []


def changes_from_notifications(
    cur, records: Iterable, bucket: str, prefix: str
) -> tuple[list[DocumentChange], NotificationCounts]:
    """Net document changes of Kafka records holding S3 notifications, resolved against the
    registry exactly like a listing; malformed messages become dead letters."""
    counts = NotificationCounts()
    events = []
    for record in records:
        counts.records += 1
        if record.value is None:
            counts.dead_letters.append(DeadLetter(
                DEAD_LETTER_SOURCE, "notification is a tombstone (null value)", None,
                record.topic, record.partition, record.offset))
            continue
        parsed = parse_event_notification(record.value, bucket, prefix, topic=record.topic,
                                          partition=record.partition, offset=record.offset)
        events.extend(parsed.events)
        counts.dead_letters.extend(parsed.dead_letters)
    counts.events = len(events)
    diff = resolve_events(events, load_keys(cur, {event.key for event in events}))
    return diff.changes, counts


def queue_lag(cur) -> dict[str, float | int]:
    """Documents registered but not yet served (or removed), and how long the oldest waited."""
    cur.execute(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(seen_at)), 0)"
        " FROM kb_documents WHERE status IN ('pending', 'deleting')")
    queued, oldest = cur.fetchone()
    return {"documents_queued": int(queued), "oldest_queued_seconds": round(float(oldest), 3)}
