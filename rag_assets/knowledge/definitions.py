"""The knowledge group: assets, checks, the jobs the S3 sensors run, the maintenance schedule."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    ScheduleDefinition,
    define_asset_job,
)

from rag_assets.knowledge.assets import (
    document_chunks,
    document_chunks_maintenance,
    documents,
    knowledge_assets,
)
from rag_assets.knowledge.checks import knowledge_checks

# Job names the sensors in sensors/s3_documents.py request runs of (they name jobs, not imports).
LISTING_JOB = "knowledge_documents"
EVENTS_JOB = "knowledge_s3_events"
MAINTENANCE_JOB = "knowledge_maintenance"

knowledge_documents_job = define_asset_job(
    LISTING_JOB,
    selection=AssetSelection.assets(documents, document_chunks),
    description="Registers a change set from the S3 listing sensor and (re)indexes or deletes "
                "the queued documents.",
)

knowledge_s3_events_job = define_asset_job(
    EVENTS_JOB,
    selection=AssetSelection.assets(documents, document_chunks),
    description="Applies S3 event notifications from `kb.s3-events` offset ranges and indexes "
                "the queued documents.",
)

knowledge_maintenance_job = define_asset_job(
    MAINTENANCE_JOB,
    selection=AssetSelection.assets(document_chunks_maintenance),
    description="Compacts and re-indexes the chunks table.",
)

knowledge_maintenance_schedule = ScheduleDefinition(
    name="knowledge_maintenance_hourly",
    job=knowledge_maintenance_job,
    cron_schedule="17 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Compaction and index upkeep of `knowledge_chunks` every hour.",
)

defs = Definitions(
    assets=knowledge_assets,
    asset_checks=knowledge_checks,
    jobs=[knowledge_documents_job, knowledge_s3_events_job, knowledge_maintenance_job],
    schedules=[knowledge_maintenance_schedule],
)
