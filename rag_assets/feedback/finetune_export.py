"""Exporting the fine-tuning dataset from the conversation lake to S3, versioned by content.

Inputs: every turn in the lake (registered objects, first delivery of each turn), the erased
customer references and flagged turns from PostgreSQL, and — when the Customer 360 tables exist
in the schema — every golden given name and surname (masked in every turn) and, for each
customer reference of the lake that resolves to one customer (`lookup.resolve_customer_id`),
every identifier the identity graph and the profile hold for that customer (masked in that
customer's turns, `PiiMasker.with_known`).
Outputs: `finetune/<version>/train.jsonl` and `finetune/<version>/manifest.json`, and a row in
`finetune_exports`. The version is a hash of the content, so an unchanged dataset is rewritten
under the same name instead of being duplicated.

Erasure: an export builds its dataset without the erasure lock, then reads the suppression list
again under it (shared; building again if someone was erased meanwhile) and records itself
before releasing it, so an export either finished before an erasure committed or left the
person out, and an erasure waits for an export's writes only, not for its masking. The
erasure's lake rewrite withdraws every export whose source offsets cover a turn it removes
(`withdraw_exports_holding`) before it rewrites the object, then deletes the withdrawn exports'
objects (`remove_withdrawn_objects`); the next scheduled export rebuilds the dataset without the
person.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from psycopg.types.json import Jsonb

from rag_assets.platform.erasure_lock import lock_for_writing

from rag_assets.feedback.suppression import committed_suppressions, suppression_list
from rag_assets.customers.known_identifiers import KnownIdentifiers
from rag_assets.customers.lookup import (
    InvalidReference,
    customer_known_identifiers,
    resolve_customer_id,
)
from rag_assets.feedback import lake_store
from rag_assets.feedback.finetune import FinetuneConfig, FinetuneDataset, build_finetune_dataset
from rag_assets.feedback.pii import PiiMasker
from resources.s3 import S3Storage

FINETUNE_PREFIX = "finetune"


@dataclass(frozen=True)
class ExportResult:
    dataset: FinetuneDataset
    dataset_key: str
    manifest_key: str
    lake_objects_read: int
    names_for_masking: int
    profiles_available: bool
    customers_known_for_masking: int


def flagged_turns(cur) -> set[tuple[str, str]]:
    cur.execute("SELECT conversation_id, turn_id FROM finetune_flagged_turns")
    return {(c, t) for c, t in cur.fetchall()}


def profile_names(cur) -> tuple[bool, list[str]]:
    """(whether customer_profiles exists, the distinct golden given names and surnames)."""
    cur.execute("SELECT to_regclass('customer_profiles') IS NOT NULL")
    if not cur.fetchone()[0]:
        return False, []
    cur.execute(
        "SELECT DISTINCT name FROM customer_profiles,"
        " LATERAL (VALUES (profile #>> '{golden,given_name,value}'),"
        "                 (profile #>> '{golden,surname,value}')) AS n(name)"
        " WHERE name IS NOT NULL AND length(btrim(name)) >= 2"
    )
    return True, sorted(name for (name,) in cur.fetchall())


_GRAPH_TABLES = ("customer_profiles", "customer_assignments", "identity_nodes", "identity_lookup")


def known_identifiers_by_ref(cur, refs: Iterable[str | None]) -> dict[str, KnownIdentifiers]:
    """For each reference that resolves to exactly one customer, what the product knows of that
    customer; empty when the Customer 360 graph is not in the schema."""
    cur.execute("SELECT bool_and(to_regclass(t) IS NOT NULL) FROM unnest(%s::text[]) AS t",
                (list(_GRAPH_TABLES),))
    if not cur.fetchone()[0]:
        return {}
    by_customer: dict[str, KnownIdentifiers] = {}
    found = {}
    for ref in sorted({r for r in refs if r}):
        try:
            customer_id = resolve_customer_id(cur, ref)
        except InvalidReference:
            continue
        if customer_id is not None:
            if customer_id not in by_customer:
                by_customer[customer_id] = customer_known_identifiers(cur, customer_id)
            found[ref] = by_customer[customer_id]
    return found


def export(cur, s3: S3Storage, client, run_id: str | None,
           config: FinetuneConfig = FinetuneConfig()) -> ExportResult:
    keys = lake_store.registered_objects(cur)
    events = lake_store.read_lake_events(s3, client, keys) if keys else []
    available, names = profile_names(cur)
    known = known_identifiers_by_ref(cur, (event.customer_ref for event in events))
    # Every customer's names in the base masker: one name pattern for the whole export.
    names = sorted({*names, *(name for identifiers in known.values() for name in identifiers.names)})
    build = partial(build_finetune_dataset, events, flagged_turns=flagged_turns(cur),
                    masker=PiiMasker(names), config=config, known_by_ref=known)
    # Built before the erasure lock is taken: an erasure waiting for this export holds back
    # every writer queued behind it, so the lock is held for the writes only.
    erased = committed_suppressions(cur)
    dataset = build(erased_customers=erased)
    # From here to the commit no erasure commits: the suppression list read now holds every
    # person erased before this export is recorded (see the module doc). Someone erased while
    # the dataset was built means building it again.
    lock_for_writing(cur)
    erased_now = suppression_list(cur)
    if erased_now.digests != erased.digests:
        dataset = build(erased_customers=erased_now)
    customers_known = len(set(known.values()))
    manifest = {**dataset.manifest, "lake_objects_read": len(keys),
                "names_for_masking": len(names), "customers_known_for_masking": customers_known}
    base = f"{s3.lake_prefix}{FINETUNE_PREFIX}/{dataset.version}"
    dataset_key, manifest_key = f"{base}/train.jsonl", f"{base}/manifest.json"
    # A withdrawn export of the same content may be having its objects removed: wait for it.
    cur.execute("SELECT 1 FROM finetune_exports WHERE version = %s FOR UPDATE", (dataset.version,))
    client.put_object(Bucket=s3.lake_bucket, Key=dataset_key, Body=dataset.to_jsonl(),
                      ContentType="application/jsonl")
    client.put_object(Bucket=s3.lake_bucket, Key=manifest_key,
                      Body=json.dumps(manifest, indent=2, sort_keys=True).encode(),
                      ContentType="application/json")
    cur.execute(
        "INSERT INTO finetune_exports (version, dataset_key, manifest_key, records_out, manifest,"
        " run_id) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (version) DO UPDATE SET"
        " run_id = EXCLUDED.run_id, exported_at = now(), withdrawn_at = NULL,"
        " withdrawn_by = NULL, objects_removed_at = NULL",
        (dataset.version, dataset_key, manifest_key, len(dataset.examples), Jsonb(manifest), run_id),
    )
    return ExportResult(dataset, dataset_key, manifest_key, len(keys), len(names), available,
                        customers_known)


def withdraw_exports_holding(cur, positions: Iterable[tuple[str, int, int]],
                             request_ids: Sequence[str]) -> int:
    """Withdraw every live export whose source offsets cover one of the lake positions
    (topic, partition, offset): it may hold those turns. Returns how many were withdrawn."""
    positions = list(positions)
    topics = [topic for topic, _, _ in positions]
    partitions = [partition for _, partition, _ in positions]
    offsets = [offset for _, _, offset in positions]
    cur.execute(
        "UPDATE finetune_exports e SET withdrawn_at = now(), withdrawn_by = %s"
        " WHERE e.withdrawn_at IS NULL AND EXISTS ("
        "  SELECT 1 FROM jsonb_to_recordset(e.manifest -> 'source_offsets')"
        "       AS r(topic text, partition int, first_offset bigint, last_offset bigint),"
        "       unnest(%s::text[], %s::int[], %s::bigint[]) AS p(topic, partition, kafka_offset)"
        "  WHERE r.topic = p.topic AND r.partition = p.partition"
        "    AND p.kafka_offset BETWEEN r.first_offset AND r.last_offset)",
        (list(request_ids), topics, partitions, offsets))
    return cur.rowcount


def remove_withdrawn_objects(cur, s3: S3Storage, client) -> int:
    """Delete the objects of withdrawn exports not removed yet; returns how many exports."""
    cur.execute("SELECT version, dataset_key, manifest_key FROM finetune_exports"
                " WHERE withdrawn_at IS NOT NULL AND objects_removed_at IS NULL FOR UPDATE")
    rows = cur.fetchall()
    for _, dataset_key, manifest_key in rows:
        for key in (dataset_key, manifest_key):
            client.delete_object(Bucket=s3.lake_bucket, Key=key)
    cur.execute("UPDATE finetune_exports SET objects_removed_at = now() WHERE version = ANY(%s)",
                ([version for version, _, _ in rows],))
    return len(rows)
