"""The log of erasure requests (`erasure_requests`): one row per request, its status and its
counts, with keyed hashes of the identifiers it erased — never a reference or an identifier.

A request is `lake_pending` once its PostgreSQL step committed, `completed` once the lake
rewrite removed every row of the erased references, `ambiguous` when its reference fitted more
than one customer (nothing erased). The row is the request's idempotency key: a request id seen
before is answered from it (`ErasureResult.already_done`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from psycopg.types.json import Jsonb

from rag_assets.platform.db import ensure_schema
from rag_assets.privacy.plan import ErasureTarget, hash_identifiers

CUSTOMER_AND_FEEDBACK_SCHEMA = (("rag_assets.customers", "schema.sql"),
                                ("rag_assets.feedback", "schema.sql"))
LAKE_PENDING, COMPLETED, AMBIGUOUS = "lake_pending", "completed", "ambiguous"


@dataclass
class ErasureResult:
    request_id: str
    status: str
    customer_found: bool
    counts: dict = field(default_factory=dict)
    already_done: bool = False

    def summary(self) -> dict:
        """Counts only: safe for logs and Dagster metadata (no reference, no identifier)."""
        return {"request_id": self.request_id, "status": self.status,
                "customer_found": self.customer_found, "already_done": self.already_done,
                **self.counts}


def ensure_erasure_schema(cur, db_schema: str) -> None:
    """The tables an erasure reads and deletes from (the customers' and feedback's)."""
    ensure_schema(cur, db_schema, CUSTOMER_AND_FEEDBACK_SCHEMA)


def existing(cur, request_id: str) -> ErasureResult | None:
    """The request as recorded, when it was seen before."""
    cur.execute("SELECT status, customer_id, counts FROM erasure_requests WHERE request_id = %s",
                (request_id,))
    row = cur.fetchone()
    if row is None:
        return None
    status, customer_id, counts = row
    return ErasureResult(request_id, status, customer_id is not None, dict(counts),
                         already_done=True)


def record_ambiguous(cur, request_id: str, source: str, run_id: str | None) -> ErasureResult:
    cur.execute(
        "INSERT INTO erasure_requests (request_id, source, customer_id, identifier_hashes,"
        " status, counts, run_id, completed_at) VALUES (%s, %s, NULL, %s, %s, %s, %s, now())",
        (request_id, source, [], AMBIGUOUS, Jsonb({}), run_id))
    return ErasureResult(request_id, AMBIGUOUS, False)


def record_erased(cur, request_id: str, source: str, target: ErasureTarget, counts: dict,
                  run_id: str | None) -> ErasureResult:
    """Record a request whose PostgreSQL step is done (its lake rewrite pending)."""
    cur.execute(
        "INSERT INTO erasure_requests (request_id, source, customer_id, identifier_hashes,"
        " status, counts, run_id) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (request_id, source, target.customer_id, hash_identifiers(target), LAKE_PENDING,
         Jsonb(counts), run_id))
    return ErasureResult(request_id, LAKE_PENDING, target.customer_id is not None, counts)


def pending_requests(cur) -> list[str]:
    cur.execute("SELECT request_id FROM erasure_requests WHERE status = %s", (LAKE_PENDING,))
    return [row[0] for row in cur.fetchall()]


def complete_requests(cur, request_ids: Iterable[str], counts: dict) -> int:
    """Mark the pending ones of `request_ids` completed, adding `counts`; how many."""
    cur.execute(
        "UPDATE erasure_requests SET status = %s, completed_at = now(),"
        " counts = counts || %s WHERE request_id = ANY(%s) AND status = %s",
        (COMPLETED, Jsonb(counts), list(request_ids), LAKE_PENDING))
    return cur.rowcount


def requests_by_status(cur) -> dict[str, int]:
    cur.execute("SELECT status, count(*) FROM erasure_requests GROUP BY status")
    return {status: int(count) for status, count in cur.fetchall()}
