"""Exporting the fine-tuning dataset from the conversation lake to S3, versioned by content.

Inputs: every turn in the lake (registered objects, first delivery of each turn), the erased
customer references and flagged turns from PostgreSQL, and — when the Customer 360 table
`customer_profiles` exists in the schema — every golden given name and surname, for masking.
Outputs: `finetune/<version>/train.jsonl` and `finetune/<version>/manifest.json`, and a row in
`finetune_exports`. The version is a hash of the content, so an unchanged dataset is rewritten
under the same name instead of being duplicated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from psycopg.types.json import Jsonb

from rag_assets.customers.erase_customer import suppression_list
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


def export(cur, s3: S3Storage, client, run_id: str | None,
           config: FinetuneConfig = FinetuneConfig()) -> ExportResult:
    keys = lake_store.registered_objects(cur)
    events = lake_store.read_lake_events(s3, client, keys) if keys else []
    available, names = profile_names(cur)
    dataset = build_finetune_dataset(
        events, erased_customers=suppression_list(cur), flagged_turns=flagged_turns(cur),
        masker=PiiMasker(names), config=config,
    )
    manifest = {**dataset.manifest, "lake_objects_read": len(keys),
                "names_for_masking": len(names)}
    base = f"{s3.lake_prefix}{FINETUNE_PREFIX}/{dataset.version}"
    dataset_key, manifest_key = f"{base}/train.jsonl", f"{base}/manifest.json"
    client.put_object(Bucket=s3.lake_bucket, Key=dataset_key, Body=dataset.to_jsonl(),
                      ContentType="application/jsonl")
    client.put_object(Bucket=s3.lake_bucket, Key=manifest_key,
                      Body=json.dumps(manifest, indent=2, sort_keys=True).encode(),
                      ContentType="application/json")
    cur.execute(
        "INSERT INTO finetune_exports (version, dataset_key, manifest_key, records_out, manifest,"
        " run_id) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (version) DO UPDATE SET"
        " run_id = EXCLUDED.run_id, exported_at = now()",
        (dataset.version, dataset_key, manifest_key, len(dataset.examples), Jsonb(manifest), run_id),
    )
    return ExportResult(dataset, dataset_key, manifest_key, len(keys), len(names), available)
