"""The knowledge-base sensors: S3 listing diffed against the document registry, and S3 event
notifications on `kb.s3-events`.

Listing sensor. Each tick lists the knowledge prefix page by page (ListObjectsV2, 1,000 keys a
page) from where the last tick stopped and diffs every page against the registry entries of the
same key range, so created, modified *and* deleted documents are found in bounded steps for a
bucket of any size. A tick stops after `listing_time_budget_s` or once it has
`max_documents_per_run` changes, and requests one run whose config carries that change set
(keys with ETag/version id — small, never content). The first pass against an empty registry is
the backfill. The cursor is `{"generation": n, "start_after": key|null}`: which listing pass
this is and the last key it covered; a pass that reaches the end starts generation n+1.

Run keys are "<sensor>:g<generation>:<hash of the change set>": the same change set is not
requested twice within a pass, while a change whose run failed is requested again by the next
pass (its registry entry was never updated). A new pass waits until no run of the job is in
flight, so it diffs against an up-to-date registry. When nothing changed but the registry holds
queued work (a failed document whose backoff is over, or the leftovers of a failed run), the
sensor requests a run that only drains that queue.

Event sensor. `kb.s3-events` is read in offset ranges by the generic Kafka range sensor; the
`documents` asset resolves the notifications against the same registry with the same logic.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from rag_assets.knowledge import registry
from rag_assets.knowledge.checks import documents_lag_report
from rag_assets.knowledge.definitions import EVENTS_JOB, LISTING_JOB, knowledge_documents_job
from rag_assets.knowledge.document_diff import DocumentChange
from rag_assets.knowledge.listing import scan_listing
from rag_assets.knowledge.streaming import DocumentMicroBatches
from rag_assets.platform.micro_batch import MicroBatchSession
from resources.postgres import PostgresResource
from resources.s3 import S3Storage
from sensors.deployment import deployment_instance, deployment_resources
from sensors.mode import streaming
from sensors.kafka_ranges import KafkaRangeSensorSpec, build_kafka_range_sensor
from sensors.run_queue import IN_FLIGHT, WAITING, runs_of
from sensors.streaming import StreamingSensorSpec, streaming_sensor

CHUNKS_INCREMENTAL = {"document_chunks": {"config": {"rebuild": False}}}



@dataclass(frozen=True)
class S3SensorSettings:
    name: str = "s3_documents_sensor"
    job_name: str = LISTING_JOB
    max_documents_per_run: int = 200
    listing_time_budget_s: float = 20.0  # well under Dagster's 60 s tick timeout
    page_size: int = 1000
    running: bool = True  # the sensor's default status


def load_cursor(raw: str | None) -> dict:
    cursor = json.loads(raw) if raw else {}
    return {"generation": int(cursor.get("generation", 0)),
            "start_after": cursor.get("start_after")}


def dump_cursor(cursor: dict) -> str:
    return json.dumps(cursor, sort_keys=True)


def change_config(change: DocumentChange) -> dict:
    return {"kind": change.kind.value, "key": change.key, "etag": change.etag,
            "version_id": change.version_id, "size": change.size}


def change_set_key(changes: list[dict]) -> str:
    canonical = json.dumps(changes, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def plan_listing_tick(settings: S3SensorSettings, cursor_raw: str | None, s3: S3Storage,
                      postgres: PostgresResource, instance: DagsterInstance) -> SensorResult:
    cursor = load_cursor(cursor_raw)
    if runs_of(instance, settings.job_name, WAITING):
        return SensorResult(skip_reason="a run of this job is still queued", cursor=cursor_raw)
    in_flight = runs_of(instance, settings.job_name, IN_FLIGHT)
    if cursor["start_after"] is None and in_flight:
        return SensorResult(skip_reason="a new listing pass waits for the runs in flight",
                            cursor=cursor_raw)
    prefix = s3.knowledge_prefix
    with postgres.transaction() as cur:
        registry.ensure_knowledge_schema(cur, postgres.db_schema)
    with postgres.transaction() as cur:
        scan = scan_listing(
            s3.get_client(), s3.knowledge_bucket, prefix,
            lambda after, upto: registry.load_range(cur, prefix, after, upto),
            start_after=cursor["start_after"], max_changes=settings.max_documents_per_run,
            time_budget_s=settings.listing_time_budget_s, page_size=settings.page_size,
        )
        queued = registry.queued_summary(cur)["due"]
    generation = cursor["generation"]
    new_cursor = ({"generation": generation + 1, "start_after": None} if scan.complete
                  else {"generation": generation, "start_after": scan.next_start_after})
    tags = {"rag/source": "s3-listing", "rag/listing_generation": str(generation)}
    if scan.changes:
        changes = [change_config(change) for change in scan.changes]
        request = RunRequest(
            run_key=f"{settings.name}:g{generation}:{change_set_key(changes)}",
            run_config={"ops": {"documents": {"config": {"changes": changes,
                                                         "full_listing": False}},
                                **CHUNKS_INCREMENTAL}},
            tags={**tags, "rag/documents": str(len(changes))},
        )
        return SensorResult(run_requests=[request], cursor=dump_cursor(new_cursor))
    if queued and not in_flight:
        request = RunRequest(
            # A drain may need repeating (backoff), so every drain request is a new run key.
            run_key=f"{settings.name}:drain:{time.time_ns()}",
            run_config={"ops": {"documents": {"config": {"full_listing": False}},
                                **CHUNKS_INCREMENTAL}},
            tags={**tags, "rag/documents": str(queued), "rag/drain": "true"},
        )
        return SensorResult(run_requests=[request], cursor=dump_cursor(new_cursor))
    return SensorResult(
        skip_reason=f"no document changes in {scan.objects_listed} objects listed",
        cursor=dump_cursor(new_cursor),
    )


def build_s3_documents_sensor(settings: S3SensorSettings = S3SensorSettings()) -> SensorDefinition:
    @sensor(name=settings.name, job_name=settings.job_name, minimum_interval_seconds=10,
            default_status=(DefaultSensorStatus.RUNNING if settings.running
                            else DefaultSensorStatus.STOPPED),
            description="Lists the knowledge prefix page by page, diffs it against the document "
                        "registry and requests a run for each bounded change set (created, "
                        "modified, deleted documents); the first pass is the backfill.")
    def _sensor(context: SensorEvaluationContext) -> SensorResult:
        resources = deployment_resources(("s3", "postgres"))
        return plan_listing_tick(settings, context.cursor, resources["s3"], resources["postgres"],
                                 deployment_instance(context))

    return _sensor


S3_LISTING = S3SensorSettings(running=not streaming())
s3_documents_sensor = build_s3_documents_sensor(S3_LISTING)

S3_EVENTS_RANGES = KafkaRangeSensorSpec(
    name="s3_events_sensor",
    job_name=EVENTS_JOB,
    root_asset="documents",
    topic_pattern=r"kb\.s3-events",
    max_per_partition=2000,
    downstream_config={"document_chunks": {"rebuild": False}},
    description="Requests a run of the knowledge assets for each new offset range of the "
                "`kb.s3-events` topic (S3 event notifications), so a large bucket need not be "
                "listed to see a change.",
)
s3_events_sensor = build_kafka_range_sensor(S3_EVENTS_RANGES)


def _open_document_batches(resources: dict, session: MicroBatchSession) -> DocumentMicroBatches:
    return DocumentMicroBatches(session, resources["s3"], resources["postgres"],
                                resources["lancedb"], resources["embedder"])


DOCUMENTS_STREAM = StreamingSensorSpec(
    name="documents_stream",
    feeds=knowledge_documents_job.selection,
    description="Streams S3 document changes into LanceDB: lists the knowledge prefix twice a "
                "second, registers created/modified/deleted documents and indexes them in small "
                "batches in a worker its ticks keep alive (no run); each tick reports what it "
                "changed as materialisations of `documents` and `document_chunks`.",
    open_batches=_open_document_batches,
    resource_keys=("s3", "postgres", "lancedb", "embedder"),
    lag_check=("documents", "documents_lag"),
    source_lag=lambda resources: documents_lag_report(resources["s3"], resources["postgres"]),
)


documents_stream = streaming_sensor(DOCUMENTS_STREAM, running=streaming())

knowledge_sensors = [s3_documents_sensor, s3_events_sensor, documents_stream]
