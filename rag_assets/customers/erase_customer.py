"""Erasing one customer everywhere the product keeps them (right to be forgotten).

`erase_customer(postgres, s3, ref)` runs in two steps:

1. **One PostgreSQL transaction** (`erase_in_postgres`): resolve the reference to a customer
   (`lookup.py`'s rules), plan the erasure (`erasure.plan_erasure`), then delete the customer's
   source records (remembering their keys in `erased_records`, so `cdc_apply` skips any later
   event of them), identity nodes, lookup rows, edges and assignments, the profile and its id
   (a `retired` event in `cluster_history`), the dead letters tied to them
   (`dead_letter_ties.py`), and their `feedback_turns` (queueing the KPI windows those turns
   were counted in); keyed hashes of their references go to the feedback suppression list
   (`suppression_list`), which feedback ingest, the lake rewrite and the fine-tuning export read. The request is recorded in `erasure_requests` with keyed hashes of
   the identifiers and status `lake_pending`.
2. **The conversation lake** (`rewrite_lake`): every Parquet object holding a turn whose
   `customer_ref` matches the suppression list is rewritten without those rows (an object left
   empty is deleted), then the pending requests are marked `completed`. It works from the
   suppression list alone, so it is idempotent: a failed rewrite is finished by the next
   erasure or by `rewrite_lake` run again.

Entry points: the CLI (`rag-assets erase --customer REF [--yes]`, `add_erase_parser`) and the
`customer_erasures` asset fed by the `privacy.erasure` topic (`erasure_assets.py`).
Nothing here logs a reference or an identifier.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from psycopg.types.json import Jsonb

from rag_assets.customers.erasure import (
    EMAIL,
    LOYALTY_NUMBER,
    PHONE,
    ErasureTarget,
    RefMatcher,
    hash_identifiers,
    new_request_id,
    plan_erasure,
)
from rag_assets.customers.dead_letter_ties import erasure_ties, name_ties
from rag_assets.customers.identity_store import lock_graph
from rag_assets.customers.source_state import RecordKey
from rag_assets.platform.dead_letters import remember_erased_ties
from rag_assets.platform.erasure_lock import lock_for_erasure

CUSTOMER_AND_FEEDBACK_SCHEMA = (("rag_assets.customers", "schema.sql"),
                                ("rag_assets.feedback", "schema.sql"))
LAKE_PENDING, COMPLETED, AMBIGUOUS = "lake_pending", "completed", "ambiguous"
# Dead letters are searched for identifier values at least this long (a short value such as a
# loyalty number "12" would match unrelated payloads).
MIN_PAYLOAD_NEEDLE = 6


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
    from rag_assets.platform.db import ensure_schema

    ensure_schema(cur, db_schema, CUSTOMER_AND_FEEDBACK_SCHEMA)


# --------------------------------------------------------------------------- CDC guard


def erased_keys(cur, keys: Iterable[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """Which of (system, table, pk) were erased on request."""
    keys = list(set(keys))
    if not keys:
        return set()
    cur.execute(
        "SELECT e.system, e.table_name, e.pk FROM erased_records e"
        " JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(system, table_name, pk)"
        " USING (system, table_name, pk)",
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]))
    return {tuple(row) for row in cur.fetchall()}


def skip_erased(cur, events: Sequence) -> tuple[list, int]:
    """The CDC events (`ChangeEvent`s) whose record was not erased, and how many were dropped.
    Truncates name no record and are kept."""
    keyed = {(e.system, e.table, e.pk) for e in events if e.op != "t" and e.pk is not None}
    erased = erased_keys(cur, keyed)
    if not erased:
        return list(events), 0
    kept = [e for e in events if e.op == "t" or (e.system, e.table, e.pk) not in erased]
    return kept, len(events) - len(kept)


class _Erased:
    """The outcome of a CDC event whose record was erased (quacks like `source_state.Outcome`)."""

    value = "erased"
    name = "ERASED"

    def __repr__(self) -> str:
        return "Outcome.ERASED"


ERASED = _Erased()


def with_erased_outcomes(events: Sequence, outcomes: list) -> list:
    """One (event, outcome) per event of `events`, in order: the outcomes of the events that
    were applied, and `ERASED` for the ones `skip_erased` dropped."""
    if len(outcomes) == len(events):
        return outcomes
    pending = list(outcomes)
    merged, i = [], 0
    for event in events:
        if i < len(pending) and pending[i][0] is event:
            merged.append(pending[i])
            i += 1
        else:
            merged.append((event, ERASED))
    return merged


# --------------------------------------------------------------------------- suppression list


def suppression_list(cur) -> RefMatcher:
    """The erased references, as a matcher over their keyed hashes."""
    cur.execute("DELETE FROM erased_customers RETURNING customer_ref")  # kept in clear before
    legacy = [ref for (ref,) in cur.fetchall()]
    if legacy:
        suppress(cur, legacy)
    cur.execute("SELECT digest FROM erased_reference_hashes")
    return RefMatcher(digest for (digest,) in cur.fetchall())


def suppress(cur, refs: Iterable[str]) -> None:
    """Add the keyed hashes of `refs` (every form each stands for) to the suppression list."""
    digests = sorted(RefMatcher.of_refs(refs).digests)
    cur.execute("INSERT INTO erased_reference_hashes (digest) SELECT * FROM unnest(%s::text[])"
                " ON CONFLICT DO NOTHING", (digests,))


# --------------------------------------------------------------------------- resolving


def matching_customers(cur, ref: str) -> tuple[set[str], str | None]:
    """(customer ids the reference fits, the record key it names if it names one).

    Same rules as `lookup.resolve_customer_id`, but reports every match so an ambiguous
    reference can be refused instead of erasing the wrong person."""
    from rag_assets.customers.lookup import (
        MAX_REFERENCE_CHARS,
        InvalidReference,
        _candidate_identifiers,
        record_key_of_reference,
    )

    ref = ref.strip()
    if not ref or len(ref) > MAX_REFERENCE_CHARS or any(ord(c) < 32 for c in ref):
        raise InvalidReference("a customer reference is 1 to 320 printable characters")
    if ref.startswith("cus_"):
        cur.execute("SELECT customer_id FROM customer_profiles WHERE customer_id = %s"
                    " UNION SELECT customer_id FROM customer_assignments WHERE customer_id = %s",
                    (ref, ref))
        found = {row[0] for row in cur.fetchall()}
        if found:
            return found, None
    record = record_key_of_reference(ref)
    keys = [record] if record else []
    for kind, value in _candidate_identifiers(ref):
        cur.execute("SELECT record_key FROM identity_lookup WHERE kind = %s AND value = %s",
                    (kind, value))
        keys.extend(row[0] for row in cur.fetchall())
    if not keys:
        return set(), None
    cur.execute("SELECT DISTINCT customer_id FROM customer_assignments WHERE record_key = ANY(%s)",
                (keys,))
    return {row[0] for row in cur.fetchall()}, record


def load_target(cur, ref: str) -> ErasureTarget | None:
    """The erasure plan for a reference; None when it fits more than one customer."""
    customers, record = matching_customers(cur, ref)
    if len(customers) > 1:
        return None
    customer_id = next(iter(customers), None)
    keys: set[str] = set()
    if customer_id is not None:
        cur.execute("SELECT record_key FROM customer_assignments WHERE customer_id = %s",
                    (customer_id,))
        keys = {row[0] for row in cur.fetchall()}
    if record is not None:
        system, table, pk = RecordKey.parse(record)
        cur.execute("SELECT 1 FROM source_records WHERE system = %s AND table_name = %s AND pk = %s",
                    (system, table, pk))
        if cur.fetchone():
            keys.add(record)
    rows, lookups, profile = {}, [], None
    if keys:
        parts = [RecordKey.parse(k) for k in keys]
        cur.execute(
            "SELECT system, table_name, pk, row_data FROM source_records"
            " WHERE (system, table_name, pk) IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))",
            ([p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts]))
        rows = {f"{s}.{t}:{pk}": data for s, t, pk, data in cur.fetchall()}
        cur.execute("SELECT kind, value FROM identity_lookup WHERE record_key = ANY(%s)",
                    (sorted(keys),))
        lookups = cur.fetchall()
    if customer_id is not None:
        cur.execute("SELECT profile FROM customer_profiles WHERE customer_id = %s", (customer_id,))
        row = cur.fetchone()
        profile = row[0] if row else None
    return plan_erasure(ref, customer_id, keys, lookups, profile, rows)


# --------------------------------------------------------------------------- step 1: PostgreSQL


def _existing(cur, request_id: str) -> ErasureResult | None:
    cur.execute("SELECT status, customer_id, counts FROM erasure_requests WHERE request_id = %s",
                (request_id,))
    row = cur.fetchone()
    if row is None:
        return None
    status, customer_id, counts = row
    return ErasureResult(request_id, status, customer_id is not None, dict(counts),
                         already_done=True)


def _delete_graph(cur, target: ErasureTarget, request_id: str, run_id: str | None) -> dict:
    keys = sorted(target.record_keys)
    parts = [RecordKey.parse(k) for k in keys]
    systems, tables, pks = [p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts]
    counts = {}
    cur.execute(
        "INSERT INTO erased_records (system, table_name, pk, request_id)"
        " SELECT s, t, p, %s FROM unnest(%s::text[], %s::text[], %s::text[]) AS k(s, t, p)"
        " ON CONFLICT DO NOTHING", (request_id, systems, tables, pks))
    match = ("(system, table_name, pk) IN"
             " (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))")
    cur.execute(f"DELETE FROM source_records WHERE {match}", (systems, tables, pks))
    counts["source_records_deleted"] = cur.rowcount
    cur.execute(f"DELETE FROM identity_pending WHERE {match}", (systems, tables, pks))
    cur.execute("DELETE FROM identity_nodes WHERE record_key = ANY(%s)", (keys,))
    counts["identity_nodes_deleted"] = cur.rowcount
    cur.execute("DELETE FROM identity_lookup WHERE record_key = ANY(%s)", (keys,))
    counts["identity_lookup_rows_deleted"] = cur.rowcount
    cur.execute("DELETE FROM identity_edges WHERE a_key = ANY(%s) OR b_key = ANY(%s)", (keys, keys))
    counts["identity_edges_deleted"] = cur.rowcount
    cur.execute("DELETE FROM customer_assignments WHERE record_key = ANY(%s) OR customer_id = %s",
                (keys, target.customer_id))
    counts["assignments_deleted"] = cur.rowcount
    if target.customer_id is not None:
        cur.execute("DELETE FROM customer_profiles WHERE customer_id = %s", (target.customer_id,))
        counts["profiles_deleted"] = cur.rowcount
        cur.execute("DELETE FROM profile_pending WHERE customer_id = %s", (target.customer_id,))
        cur.execute("DELETE FROM customer_ids WHERE customer_id = %s", (target.customer_id,))
        cur.execute("INSERT INTO cluster_history (kind, customer_id, other_id, run_id)"
                    " VALUES ('retired', %s, NULL, %s)", (target.customer_id, run_id))
    return counts


def _delete_dead_letters(cur, target: ErasureTarget, request_id: str) -> int:
    """Delete every dead letter tied to the person (`dead_letter_ties`): by a hash of their
    records, references or identifiers, or by all the words of one of their names. The hashes
    are kept, so a letter of theirs stored later is stored without its payload (names are not:
    a later letter naming a namesake keeps its payload)."""
    ties = erasure_ties(target)
    remember_erased_ties(cur, ties, request_id)
    cur.execute("DELETE FROM dead_letters WHERE ties && %s::text[]", (ties,))
    deleted = cur.rowcount
    for words in name_ties(target.names):
        cur.execute("DELETE FROM dead_letters WHERE ties @> %s::text[]", (words,))
        deleted += cur.rowcount
    return deleted + _delete_dead_letters_by_bytes(cur, target)


def _delete_dead_letters_by_bytes(cur, target: ErasureTarget) -> int:
    """The fallback for letters stored before dead letters kept their ties (`ties` NULL), and
    for values past the part of a payload that was read for ties: an exact byte match of an
    email, phone or loyalty number (as stored or as the source system spelled it)."""
    needles = {value for kind, value in target.identifiers if kind in (EMAIL, PHONE, LOYALTY_NUMBER)}
    needles |= {r for r in target.refs if not r.startswith("cus_") and ":" not in r}
    needles = sorted(n.encode() for n in needles if len(n) >= MIN_PAYLOAD_NEEDLE)
    if not needles:
        return 0
    cur.execute(
        "DELETE FROM dead_letters d WHERE d.payload IS NOT NULL AND EXISTS"
        " (SELECT 1 FROM unnest(%s::bytea[]) AS n(b) WHERE position(n.b IN d.payload) > 0)",
        (needles,))
    return cur.rowcount


def _erase_feedback(cur, target: ErasureTarget) -> dict:
    from rag_assets.feedback import kpi_store
    from rag_assets.feedback.windows import windows_of

    matcher = RefMatcher.of_refs(target.refs)
    cur.execute("SELECT DISTINCT customer_ref FROM feedback_turns WHERE customer_ref IS NOT NULL")
    seen = [ref for (ref,) in cur.fetchall() if matcher.matches(ref)]
    refs = sorted(set(target.refs) | set(seen))
    suppress(cur, refs)
    cur.execute("DELETE FROM feedback_turns WHERE customer_ref = ANY(%s) RETURNING event_time",
                (refs,))
    times = [row[0] for row in cur.fetchall()]
    # The KPI rows those turns were counted in are recomputed by the next KPI run.
    kpi_store.queue_windows(cur, {w for moment in times for w in windows_of(moment)})
    return {"feedback_turns_deleted": len(times), "suppressed_refs": len(refs)}


def erase_in_postgres(cur, db_schema: str, ref: str, request_id: str | None = None,
                      source: str = "cli", run_id: str | None = None) -> ErasureResult:
    """Step 1, inside the caller's transaction. Idempotent per request id."""
    request_id = request_id or new_request_id()
    ensure_erasure_schema(cur, db_schema)
    # No writer of customer data in flight or started until this commits, and one erasure at
    # a time (two requests for the same person must not interleave).
    lock_for_erasure(cur)
    lock_graph(cur)  # the graph changes: no linker may be between its read and its write
    done = _existing(cur, request_id)
    if done is not None:
        return done
    target = load_target(cur, ref)
    if target is None:
        cur.execute(
            "INSERT INTO erasure_requests (request_id, source, customer_id, identifier_hashes,"
            " status, counts, run_id, completed_at) VALUES (%s, %s, NULL, %s, %s, %s, %s, now())",
            (request_id, source, [], AMBIGUOUS, Jsonb({}), run_id))
        return ErasureResult(request_id, AMBIGUOUS, False)
    counts = _delete_graph(cur, target, request_id, run_id) if target.record_keys or \
        target.customer_id else {}
    counts["dead_letters_deleted"] = _delete_dead_letters(cur, target, request_id)
    counts.update(_erase_feedback(cur, target))
    counts["records_erased"] = len(target.record_keys)
    cur.execute(
        "INSERT INTO erasure_requests (request_id, source, customer_id, identifier_hashes,"
        " status, counts, run_id) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (request_id, source, target.customer_id, hash_identifiers(target), LAKE_PENDING,
         Jsonb(counts), run_id))
    return ErasureResult(request_id, LAKE_PENDING, target.customer_id is not None, counts)


# --------------------------------------------------------------------------- step 2: the lake


@dataclass
class LakeRewrite:
    objects_scanned: int = 0
    objects_rewritten: int = 0
    objects_deleted: int = 0
    rows_removed: int = 0
    finetune_exports_withdrawn: int = 0
    finetune_exports_removed: int = 0
    requests_completed: int = 0

    def as_dict(self) -> dict:
        return {"lake_objects_scanned": self.objects_scanned,
                "lake_objects_rewritten": self.objects_rewritten,
                "lake_objects_deleted": self.objects_deleted,
                "lake_rows_removed": self.rows_removed,
                "finetune_exports_withdrawn": self.finetune_exports_withdrawn,
                "finetune_exports_removed": self.finetune_exports_removed,
                "requests_completed": self.requests_completed}


def rewrite_lake(postgres, s3, client=None) -> LakeRewrite:
    """Remove every lake row of an erased reference, withdrawing the fine-tuning exports that
    may hold them; complete the pending requests."""
    from rag_assets.feedback import lake_store
    from rag_assets.feedback.finetune_export import remove_withdrawn_objects

    client = client or lake_store.s3_client(s3)
    stats = LakeRewrite()
    with postgres.transaction() as cur:
        ensure_erasure_schema(cur, postgres.db_schema)
        cur.execute("SELECT request_id FROM erasure_requests WHERE status = %s", (LAKE_PENDING,))
        pending = [row[0] for row in cur.fetchall()]
        matcher = suppression_list(cur)
    if pending:
        _rewrite_pending(postgres, s3, client, pending, matcher, stats)
    with postgres.transaction() as cur:  # also finishes a removal an earlier rewrite left
        stats.finetune_exports_removed = remove_withdrawn_objects(cur, s3, client)
    return stats


def _rewrite_pending(postgres, s3, client, pending: list[str], matcher: RefMatcher,
                     stats: LakeRewrite) -> None:
    from rag_assets.feedback import lake_store
    from rag_assets.feedback.finetune_export import withdraw_exports_holding
    from rag_assets.feedback.lake_layout import frame_to_parquet, parquet_to_frame

    found_refs: set[str] = set()
    changed: dict[str, int | None] = {}  # object key (without the lake prefix) -> rows left
    if matcher:
        for full_key in lake_store.list_lake_keys(s3, client):
            stats.objects_scanned += 1
            frame = parquet_to_frame(
                client.get_object(Bucket=s3.lake_bucket, Key=full_key)["Body"].read())
            refs = frame["customer_ref"].astype(object).where(frame["customer_ref"].notna(), None)
            drop = [matcher.matches(r) for r in refs]
            if not any(drop):
                continue
            found_refs |= {r for r, d in zip(refs, drop, strict=True) if d and r is not None}
            keep = frame[[not d for d in drop]].reset_index(drop=True)
            stats.rows_removed += len(frame) - len(keep)
            # Before the rows go: an export holding them must not outlive a crash here.
            removed = frame[drop]
            with postgres.transaction() as cur:
                stats.finetune_exports_withdrawn += withdraw_exports_holding(cur, zip(
                    removed["kafka_topic"], removed["kafka_partition"].astype(int),
                    removed["kafka_offset"].astype(int)), pending)
            key = full_key.removeprefix(s3.lake_prefix)
            if len(keep):
                client.put_object(Bucket=s3.lake_bucket, Key=full_key, Body=frame_to_parquet(keep),
                                  ContentType="application/vnd.apache.parquet")
                stats.objects_rewritten += 1
                changed[key] = len(keep)
            else:
                client.delete_object(Bucket=s3.lake_bucket, Key=full_key)
                stats.objects_deleted += 1
                changed[key] = None
    with postgres.transaction() as cur:
        ensure_erasure_schema(cur, postgres.db_schema)
        # Spellings met only in the lake join the suppression list (a rebuild re-lands them).
        suppress(cur, found_refs)
        for key, rows in changed.items():
            if rows is None:
                cur.execute("DELETE FROM conversation_lake_objects WHERE object_key = %s", (key,))
            else:
                cur.execute("UPDATE conversation_lake_objects SET row_count = %s"
                            " WHERE object_key = %s", (rows, key))
        cur.execute(
            "UPDATE erasure_requests SET status = %s, completed_at = now(),"
            " counts = counts || %s WHERE request_id = ANY(%s) AND status = %s",
            (COMPLETED, Jsonb(stats.as_dict()), pending, LAKE_PENDING))
        stats.requests_completed = cur.rowcount


# --------------------------------------------------------------------------- the whole erasure


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


# --------------------------------------------------------------------------- CLI


def add_erase_parser(commands) -> None:
    """Add `rag-assets erase --customer REF [--yes] [--request-id ID] [--json]`."""
    erase = commands.add_parser(
        "erase", help="erase a customer everywhere (right to be forgotten)",
        description="Erase the customer a reference points to (customer id, record such as "
                    "system:pk, email, loyalty number or phone) from source records, identity "
                    "graph, profiles, feedback turns, the conversation lake and future "
                    "fine-tuning exports. Without --yes, shows what would be erased.")
    erase.add_argument("--customer", required=True, help="customer reference")
    erase.add_argument("--yes", action="store_true", help="really erase (otherwise a dry run)")
    erase.add_argument("--request-id", default=None, help="idempotency key (default: a new id)")
    erase.add_argument("--json", action="store_true", help="machine-readable output")
    erase.add_argument("--pg-schema", default=None,
                       help="PostgreSQL schema (default: RAG_PG_SCHEMA, else rag)")
    erase.set_defaults(handler=erase_cli)


def erase_cli(args: argparse.Namespace, postgres=None, s3=None, out: TextIO | None = None) -> int:
    """0 erased (or dry run found a customer), 1 nothing / ambiguous, 2 invalid reference."""
    from rag_assets.customers.lookup import InvalidReference

    out = out or sys.stdout
    if postgres is None:
        from resources.defaults import resource_from_environment

        postgres = resource_from_environment("postgres")
        if getattr(args, "pg_schema", None):
            postgres = postgres.model_copy(update={"db_schema": args.pg_schema})
        s3 = s3 or resource_from_environment("s3")
    try:
        if not args.yes:
            with postgres.transaction() as cur:
                ensure_erasure_schema(cur, postgres.db_schema)
                target = load_target(cur, args.customer)
            if target is None:
                print("the reference matches more than one customer: give a customer id",
                      file=sys.stderr)
                return 1
            plan = {"customer_found": target.customer_id is not None,
                    "customer_id": target.customer_id, "records": len(target.record_keys),
                    "identifiers": len(target.identifiers), "references": len(target.refs)}
            print(json.dumps(plan) if args.json else
                  f"dry run: would erase customer {target.customer_id or '(none)'} — "
                  f"{plan['records']} record(s), {plan['identifiers']} identifier(s), feedback "
                  f"under {plan['references']} reference(s). Add --yes to erase.", file=out)
            return 0 if target.customer_id else 1
        result = erase_customer(postgres, s3, args.customer, args.request_id, "cli")
    except InvalidReference as error:
        print(f"invalid reference: {error}", file=sys.stderr)
        return 2
    if result.status == AMBIGUOUS:
        print("the reference matches more than one customer: give a customer id", file=sys.stderr)
        return 1
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True), file=out)
    else:
        print(f"erasure {result.request_id}: {result.status}; "
              + ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())), file=out)
    return 0 if result.customer_found or result.counts.get("feedback_turns_deleted") else 1
