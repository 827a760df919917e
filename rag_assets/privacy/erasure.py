"""Erasing one customer everywhere the product keeps them (right to be forgotten).

`erase_customer(postgres, s3, ref)` runs in two steps:

1. **One PostgreSQL transaction** (`erase_in_postgres`): resolve the reference to a customer
   (`resolution.py`, `lookup.py`'s rules), plan the erasure (`plan.plan_erasure`), then delete,
   each through the store of the domain that owns the rows: the customer's source records
   (their keys kept in `erased_records`, so `cdc_apply` skips any later event of them:
   `customers/erased_records.py`, `source_store.delete_records`), identity nodes, lookup rows,
   edges and assignments, the profile and its id (a `retired` event in `cluster_history`:
   `identity_store.forget_records`, `retire_customer`), the dead letters tied to them
   (`dead_letter_erasure.py`), and their `feedback_turns` (queueing the KPI windows those turns
   were counted in); keyed hashes of their references go to the feedback suppression list
   (`feedback/suppression.forget_turns`), which feedback ingest, the lake rewrite and the
   fine-tuning export read. The request is recorded in `erasure_requests` with keyed hashes of
   the identifiers and status `lake_pending` (`request_log.py`).
2. **The conversation lake** (`lake_rewrite.rewrite_lake`): every object holding a row of an
   erased reference is rewritten without it, then the pending requests are `completed`.

Entry points: the CLI (`rag-assets erase --customer REF [--yes]`, `cli_commands.py`) and the
`customer_erasures` asset fed by the `privacy.erasure` topic (`assets.py`).
Nothing here logs a reference or an identifier.
"""

from __future__ import annotations

from rag_assets.customers import identity_store, source_store
from rag_assets.customers.erased_records import remember_erased
from rag_assets.customers.identity_store import lock_graph
from rag_assets.feedback.suppression import forget_turns
from rag_assets.platform.erasure_lock import lock_for_erasure
from rag_assets.privacy import request_log
from rag_assets.privacy.dead_letter_erasure import delete_dead_letters
from rag_assets.privacy.lake_rewrite import rewrite_lake
from rag_assets.privacy.plan import ErasureTarget
from rag_assets.privacy.request_log import (
    AMBIGUOUS,
    COMPLETED,
    LAKE_PENDING,
    ErasureResult,
    ensure_erasure_schema,
)
from rag_assets.privacy.requests import new_request_id
from rag_assets.privacy.resolution import load_target


def erase_in_postgres(cur, db_schema: str, ref: str, request_id: str | None = None,
                      source: str = "cli", run_id: str | None = None) -> ErasureResult:
    """Step 1, inside the caller's transaction. Idempotent per request id."""
    request_id = request_id or new_request_id()
    ensure_erasure_schema(cur, db_schema)
    # No writer of customer data in flight or started until this commits, and one erasure at
    # a time (two requests for the same person must not interleave).
    lock_for_erasure(cur)
    lock_graph(cur)  # the graph changes: no linker may be between its read and its write
    done = request_log.existing(cur, request_id)
    if done is not None:
        return done
    target = load_target(cur, ref)
    if target is None:
        return request_log.record_ambiguous(cur, request_id, source, run_id)
    counts = delete_person(cur, target, request_id, run_id)
    return request_log.record_erased(cur, request_id, source, target, counts, run_id)


def delete_person(cur, target: ErasureTarget, request_id: str, run_id: str | None) -> dict:
    """Every PostgreSQL row of the person, through the stores of the domains; counts only."""
    counts = _delete_graph(cur, target, request_id, run_id) if target.record_keys or \
        target.customer_id else {}
    counts["dead_letters_deleted"] = delete_dead_letters(cur, target, request_id)
    counts.update(forget_turns(cur, target.refs))
    counts["records_erased"] = len(target.record_keys)
    return counts


def _delete_graph(cur, target: ErasureTarget, request_id: str, run_id: str | None) -> dict:
    keys = target.record_keys
    remember_erased(cur, keys, request_id)
    counts = {"source_records_deleted": source_store.delete_records(cur, keys)}
    counts.update(identity_store.forget_records(cur, keys, target.customer_id))
    if target.customer_id is not None:
        counts["profiles_deleted"] = identity_store.retire_customer(cur, target.customer_id,
                                                                    run_id)
    return counts


def erase_customer(postgres, s3, ref: str, request_id: str | None = None, source: str = "cli",
                   run_id: str | None = None) -> ErasureResult:
    """Erase the customer `ref` points to, everywhere (see the module doc)."""
    with postgres.transaction() as cur:
        result = erase_in_postgres(cur, postgres.db_schema, ref, request_id, source, run_id)
    if result.status == AMBIGUOUS:
        return result
    if s3 is not None:
        lake = rewrite_lake(postgres, s3)
        if result.status == LAKE_PENDING and lake.requests_completed:
            result.status = COMPLETED
        result.counts.update({k: v for k, v in lake.as_dict().items() if k != "requests_completed"})
    return result
