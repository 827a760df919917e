"""Asset checks of the knowledge group: fragment count, table/registry agreement, failures,
processing lag."""

from datetime import UTC, datetime

from dagster import AssetCheckResult, AssetCheckSeverity, asset_check

from rag_assets.knowledge import registry
from rag_assets.knowledge.assets import (
    document_chunks,
    documents,
    ensure_knowledge_schema,
    open_table,
)
from rag_assets.knowledge.chunk_store import fragment_count
from rag_assets.knowledge.indexing import table_doc_keys
from rag_assets.knowledge.listing import scan_listing
from rag_assets.knowledge.streaming import MAX_LAG_SECONDS
from rag_assets.platform.micro_batch import LagReport
from resources.embedder import EmbedderResource
from resources.lancedb import LanceDBResource
from resources.postgres import PostgresResource
from resources.s3 import S3Storage

# Measured when the table design was chosen: 2,001 fragments made a top-10 query 270 ms;
# compacted, 19 ms. Warn well before.
MAX_FRAGMENTS = 64


@asset_check(asset=document_chunks, description=(
    f"`knowledge_chunks` has at most {MAX_FRAGMENTS} fragments (warn): more means the "
    "maintenance schedule is not keeping up and queries slow down."))
def chunk_fragment_count(lancedb: LanceDBResource, embedder: EmbedderResource) -> AssetCheckResult:
    table = open_table(lancedb, embedder.get_embedder().dimension)
    fragments = fragment_count(table)
    return AssetCheckResult(passed=fragments <= MAX_FRAGMENTS, severity=AssetCheckSeverity.WARN,
                            metadata={"fragment_count": fragments, "max_fragments": MAX_FRAGMENTS,
                                      "table_version": table.version})


@asset_check(asset=document_chunks, description=(
    "LanceDB serves chunks only of documents the registry knows, and exactly as many as the "
    "registry records: no chunk of a deleted document is left behind."))
def chunks_match_registry(postgres: PostgresResource, lancedb: LanceDBResource,
                          embedder: EmbedderResource) -> AssetCheckResult:
    ensure_knowledge_schema(postgres)
    table = open_table(lancedb, embedder.get_embedder().dimension)
    with postgres.transaction() as cur:
        known = registry.all_keys(cur)
        expected = registry.served_chunk_total(cur)
        queued = registry.queued_summary(cur)["due"]
    rows = table.count_rows()
    orphans = len(table_doc_keys(table) - known)
    # While work is queued (e.g. deletes not applied yet) the totals may differ for a moment.
    passed = orphans == 0 and (rows == expected or queued > 0)
    return AssetCheckResult(passed=passed, metadata={
        "rows_in_table": rows, "rows_in_registry": expected,
        "documents_without_registry_entry": orphans, "documents_queued": queued})


@asset_check(asset=documents, description=(
    "No document is stuck failing (warn). Rejected files are reported, not failed: they wait "
    "for a usable version of the object."))
def documents_not_failing(postgres: PostgresResource) -> AssetCheckResult:
    ensure_knowledge_schema(postgres)
    with postgres.transaction() as cur:
        status = registry.status_counts(cur)
    return AssetCheckResult(passed=status["failed"] == 0, severity=AssetCheckSeverity.WARN,
                            metadata={f"documents_{name}": n for name, n in status.items()})


@asset_check(asset=documents, description=(
    f"Processing lag: no S3 change waits more than {MAX_LAG_SECONDS:.0f} s "
    "(RAG_MAX_DOCUMENT_LAG_SECONDS) to be served — neither a change the listing has not "
    "registered yet (its S3 LastModified) nor a registered document not yet indexed. The "
    "streaming sensor reports this check every minute and whenever it flips."))
def documents_lag(s3: S3Storage, postgres: PostgresResource) -> AssetCheckResult:
    report = documents_lag_report(s3, postgres)
    return AssetCheckResult(passed=report.passed, metadata=report.metadata)


def documents_lag_report(s3: S3Storage, postgres: PostgresResource) -> LagReport:
    """The whole source's lag, whichever workers apply it."""
    ensure_knowledge_schema(postgres)
    prefix = s3.knowledge_prefix
    with postgres.transaction() as cur:
        scan = scan_listing(s3.get_client(), s3.knowledge_bucket, prefix,
                            lambda after, upto: registry.load_range(cur, prefix, after, upto))
        queued = registry.queue_lag(cur)
    unregistered = unregistered_change_age(scan.changes, datetime.now(UTC))
    oldest = max(queued["oldest_queued_seconds"], unregistered["oldest_unregistered_seconds"])
    return LagReport(passed=oldest <= MAX_LAG_SECONDS, metadata={
        **queued, **unregistered, "max_lag_seconds": MAX_LAG_SECONDS})


def unregistered_change_age(changes, now: datetime) -> dict:
    """How many listed changes the registry does not hold yet, and the age of the oldest."""
    stamps = [c.last_modified for c in changes if c.last_modified is not None]
    oldest = max(((now - t).total_seconds() for t in stamps), default=0.0)
    return {"changes_unregistered": len(changes), "oldest_unregistered_seconds": round(oldest, 3)}


knowledge_checks = [chunk_fragment_count, chunks_match_registry, documents_not_failing,
                    documents_lag]
