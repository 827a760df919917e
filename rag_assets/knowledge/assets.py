"""Knowledge-base assets: S3 documents → document registry → LanceDB chunks; table maintenance.

Thin Dagster wiring over the plain modules beside this one. `documents` registers what changed
(from a change set the S3 sensor sends, from S3 event notifications on `kb.s3-events`, or — when
materialised by hand — from a full listing diffed against the registry, which is also the
backfill); it queues the work in the registry in PostgreSQL. `document_chunks` takes that queue:
parse, chunk, embed only the chunks whose content hash is new, and write each batch to LanceDB in
one commit. No document content is logged or put in metadata.
"""

from datetime import timedelta

from dagster import (
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from rag_assets.catalogue.assets import DOCUMENTS_KEY
from rag_assets.knowledge import index_queue, registry
from rag_assets.knowledge.chunk_store import (
    DEFAULT_TABLE_NAME,
    DEFAULT_VECTOR_INDEX_MIN_ROWS,
    MAX_UNINDEXED_ROWS,
    TableUpkeep,
    fragment_count,
    maintain_table,
    open_chunk_table,
)
from rag_assets.knowledge.document_diff import ChangeKind, DocumentChange
from rag_assets.platform.retry import RetryPolicy
from rag_assets.knowledge.indexing import (
    DocumentIndexer,
    IndexerSettings,
    doc_keys_filter,
    table_doc_keys,
)
from rag_assets.knowledge.listing import scan_listing
from rag_assets.knowledge.parsing import DEFAULT_MAX_BYTES
from rag_assets.platform.asset_conventions import HOURLY, OWNER, STREAMED, table_schema
from rag_assets.customers.dead_letter_ties import ties_of
from rag_assets.platform.dead_letters import store_dead_letters
from rag_assets.platform.kafka_ingest import OffsetRangesConfig, claim_range, ranges_as_dicts
from resources.embedder import EmbedderResource
from resources.kafka import KafkaResource
from resources.lancedb import LanceDBResource
from resources.postgres import PostgresResource
from resources.s3 import S3Storage

EVENTS_CONSUMER = "documents"  # the offset-ledger consumer of `kb.s3-events` (= asset name)
MAX_KEYS_IN_METADATA = 20


def ensure_knowledge_schema(postgres: PostgresResource) -> None:
    with postgres.transaction() as cur:
        registry.ensure_knowledge_schema(cur, postgres.db_schema)


def open_table(lancedb: LanceDBResource, dimension: int, table_name: str = DEFAULT_TABLE_NAME):
    return open_chunk_table(lancedb.uri, dimension, table_name,
                            storage_options=lancedb.storage_options() or None)


# --------------------------------------------------------------------------------------------
# documents
# --------------------------------------------------------------------------------------------


class DocumentChangeConfig(Config):
    kind: str = Field(description="created, modified or deleted")
    key: str
    etag: str | None = None
    version_id: str | None = None
    size: int | None = None

    def to_change(self) -> DocumentChange:
        return DocumentChange(ChangeKind(self.kind), self.key, self.etag, self.version_id,
                              self.size)


class DocumentsConfig(OffsetRangesConfig):
    changes: list[DocumentChangeConfig] = Field(
        default_factory=list,
        description="A change set from the S3 listing sensor (keys with ETag/version id).",
    )
    full_listing: bool = Field(
        default=True,
        description="With no change set and no offset ranges: list the whole prefix and diff it "
        "with the registry (the backfill; the default when materialised by hand). Sensor runs "
        "that only retry queued documents set false.",
    )


def _mode(config: DocumentsConfig) -> str:
    if config.ranges:
        return "events"
    if config.changes:
        return "change set"
    return "full listing" if config.full_listing else "queue only"


@asset(
    group_name="knowledge",
    deps=[DOCUMENTS_KEY],
    freshness_policy=STREAMED,
    kinds={"s3", "postgres", "python"},
    owners=[OWNER],
    description=(
        "The document registry: every policy/help document under the knowledge prefix of the S3 "
        "bucket, with the version (ETag / version id) last seen, its size and content hash, its "
        "parse status (pending, indexed, rejected with the reason, failed and when it is "
        "retried, deleting) and which version LanceDB serves. Fed by the S3 listing sensor "
        "(created/modified/deleted change sets), by S3 event notifications on `kb.s3-events`, "
        "or, materialised by hand, by a full paginated listing diffed against the registry "
        "(this is also the initial backfill)."
    ),
    metadata={
        "dagster/column_schema": table_schema(
            ("doc_key", "text", "S3 key of the document"),
            ("etag, version_id", "text", "latest version seen"),
            ("size_bytes", "bigint", "object size"),
            ("status", "text", "pending, deleting, indexed, rejected or failed"),
            ("content_hash", "text", "sha256 of the bytes last read"),
            ("error", "text", "reason of the last rejection or failure"),
            ("attempts, next_attempt_at", "int, timestamptz", "retry state of a failing document"),
            ("served_version", "text", "version whose chunks are served"),
            ("chunk_count", "int", "chunks served"),
            ("indexed_at", "timestamptz", "when served_version was written"),
        ),
        "dagster/table_name": "kb_documents",
    },
)
def documents(context: AssetExecutionContext, config: DocumentsConfig, s3: S3Storage,
              postgres: PostgresResource, kafka: KafkaResource) -> MaterializeResult:
    run_id = context.run.run_id
    mode = _mode(config)
    ensure_knowledge_schema(postgres)
    bucket, prefix = s3.knowledge_bucket, s3.knowledge_prefix
    extra: dict = {}
    dead_letters = 0
    with postgres.transaction() as cur:
        if mode == "events":
            records, ranges_applied = [], 0
            for rng in config.ranges:
                claimed = claim_range(cur, EVENTS_CONSUMER, rng, run_id, kafka.read_range)
                ranges_applied += claimed is not None
                records.extend(claimed.records if claimed else [])
            changes, counts = registry.changes_from_notifications(cur, records, bucket, prefix)
            dead_letters = store_dead_letters(cur, counts.dead_letters, run_id,
                                              ties_of=ties_of)
            seen = counts.events
            extra = {"notifications_read": counts.records, "ranges_applied": ranges_applied,
                     "offset_ranges": MetadataValue.json(ranges_as_dicts(config.ranges))}
        elif mode == "change set":
            changes = [change.to_change() for change in config.changes]
            seen = len(changes)
        elif mode == "full listing":
            scan = scan_listing(
                s3.get_client(), bucket, prefix,
                lambda after, upto: registry.load_range(cur, prefix, after, upto),
            )
            changes, seen = scan.changes, scan.objects_listed
            extra = {"listing_pages": scan.pages}
        else:
            changes, seen = [], 0
        counts = registry.register_changes(cur, changes, run_id)
        status = registry.status_counts(cur)
        queue = registry.queued_summary(cur)
    context.log.info(f"{mode}: {counts.created} created, {counts.modified} modified, "
                     f"{counts.deleted} deleted, {counts.unchanged} unchanged")
    return MaterializeResult(metadata={
        "mode": mode,
        "documents_seen": seen,
        "documents_created": counts.created,
        "documents_modified": counts.modified,
        "documents_deleted": counts.deleted,
        "documents_unchanged": counts.unchanged,
        "dead_letters": dead_letters,
        "documents_total": sum(n for s, n in status.items() if s != "deleting"),
        "documents_failed": status["failed"],
        "documents_rejected": status["rejected"],
        "documents_queued": queue["due"],
        **extra,
    })


# --------------------------------------------------------------------------------------------
# document_chunks
# --------------------------------------------------------------------------------------------


class DocumentChunksConfig(Config):
    rebuild: bool = Field(
        default=True,
        description="Re-read every registered document (the default when materialised by hand): "
        "re-chunks everything, re-embeds only chunks whose hash has no vector yet, and removes "
        "chunks of documents the registry does not know. Sensor runs set false and take only "
        "the queued documents.",
    )
    batch_size: int = Field(default=50, description="Documents per LanceDB commit.")
    max_documents: int = Field(default=0, description="Stop after this many (0: drain the queue).")
    embed_max_attempts: int = Field(default=3, description="Embedding attempts per document.")
    embed_retry_base_seconds: float = Field(default=0.5, description="First backoff delay.")
    max_document_bytes: int = Field(default=DEFAULT_MAX_BYTES,
                                    description="Larger objects are rejected unread.")
    max_unindexed_rows: int = Field(
        default=MAX_UNINDEXED_ROWS,
        description="Compact and bring the indexes up to date after a commit that leaves this "
        "many rows outside the full-text index (every text query scans those one by one).")


def _requeue_all_and_remove_orphans(postgres: PostgresResource, table, run_id: str) -> int:
    """A rebuild's start: every registered document queued again, and the chunks of documents
    the registry does not know deleted. Returns how many such documents there were."""
    with postgres.transaction() as cur:
        registry.requeue_all(cur, run_id)
        known = registry.all_keys(cur)
    orphans = sorted(table_doc_keys(table) - known)
    if orphans:
        table.delete(doc_keys_filter(orphans))
    return len(orphans)


@asset(
    group_name="knowledge",
    freshness_policy=STREAMED,
    deps=[documents],
    kinds={"lancedb", "python"},
    owners=[OWNER],
    description=(
        "Chunks of every usable document, embedded, in the LanceDB table `knowledge_chunks`. "
        "Documents are parsed (Markdown, text, HTML, PDF), cut into ~240-token chunks at "
        "content-defined boundaries, and only chunks whose content hash has no vector yet are "
        "embedded (an edit re-embeds a few chunks; a rename none). Each batch of documents is "
        "one LanceDB commit, so a reader never sees a document half-updated; a deleted document "
        "leaves no chunk. Embedding failures are retried with backoff; a document that still "
        "fails keeps its previous chunks served and is retried on a later tick."
    ),
    metadata={
        "dagster/column_schema": table_schema(
            ("doc_key", "string", "S3 key of the document"),
            ("doc_version", "string", "S3 version id, else ETag, of the document"),
            ("chunk_no", "int32", "position of the chunk in the document"),
            ("chunk_id", "string", "<doc_key>#<chunk_no>, the merge key"),
            ("content_hash", "string", "hash of heading path + normalised text"),
            ("text", "string", "chunk text (overlap included)"),
            ("heading", "string", "heading path, ' > '-separated"),
            ("vector", "fixed_size_list<float32>", "unit-length embedding"),
            ("embedding_model", "string", "model that computed the vector"),
            ("run_id", "string", "Dagster run that wrote the row"),
            ("embedded_at", "timestamp[us, UTC]", "when the vector was computed"),
        ),
        "dagster/table_name": DEFAULT_TABLE_NAME,
    },
)
def document_chunks(context: AssetExecutionContext, config: DocumentChunksConfig,
                    s3: S3Storage, postgres: PostgresResource, lancedb: LanceDBResource,
                    embedder: EmbedderResource) -> MaterializeResult:
    run_id = context.run.run_id
    model = embedder.get_embedder()
    ensure_knowledge_schema(postgres)
    table = open_table(lancedb, model.dimension)
    settings = IndexerSettings(max_bytes=config.max_document_bytes, retry=RetryPolicy(
        max_attempts=config.embed_max_attempts,
        base_delay_seconds=config.embed_retry_base_seconds))
    indexer = DocumentIndexer(table, model, s3.get_client(), s3.knowledge_bucket, run_id,
                              settings)
    orphans_removed = dead_letters = upkeeps = 0
    upkeep = TableUpkeep(max_unindexed_rows=config.max_unindexed_rows)
    processed: set[str] = set()
    with postgres.transaction() as lock:
        index_queue.writer_lock(lock, postgres.db_schema)
        if config.rebuild:
            orphans_removed = _requeue_all_and_remove_orphans(postgres, table, run_id)
        while not config.max_documents or len(processed) < config.max_documents:
            limit = config.batch_size
            if config.max_documents:
                limit = min(limit, config.max_documents - len(processed))
            with postgres.transaction() as cur:
                items = registry.next_batch(cur, limit, exclude=processed)
            if not items:
                break
            outcomes = indexer.process_batch(items)
            upkeeps += upkeep.after_commit(table) is not None
            with postgres.transaction() as cur:
                dead_letters += index_queue.record_outcomes(cur, outcomes, run_id)
            processed.update(item.key for item in items)
    with postgres.transaction() as cur:
        status = registry.status_counts(cur)
        queue = registry.queued_summary(cur)
    stats = indexer.stats
    context.log.info(
        f"{stats.documents_indexed} indexed, {stats.documents_deleted} deleted, "
        f"{stats.documents_rejected} rejected, {stats.documents_failed} failed; "
        f"{stats.chunks_embedded} chunks embedded, {stats.chunks_reused} reused")
    return MaterializeResult(metadata={
        **stats.metadata(),
        "mode": "rebuild" if config.rebuild else "incremental",
        "documents_changed": stats.documents_indexed,
        "dead_letters": dead_letters,
        "orphan_documents_removed": orphans_removed,
        "failed_documents": MetadataValue.json(stats.failed_keys[:MAX_KEYS_IN_METADATA]),
        "rejected_documents": MetadataValue.json(
            dict(list(stats.rejected.items())[:MAX_KEYS_IN_METADATA])),
        "documents_failing_total": status["failed"],
        "documents_queued": queue["due"],
        "documents_backing_off": queue["backing_off"],
        "embedding_model": model.model_id,
        "table_version": table.version,
        "compactions": upkeeps,
        "fragment_count": fragment_count(table),
        "rows_total": table.count_rows(),
    })


# --------------------------------------------------------------------------------------------
# Maintenance
# --------------------------------------------------------------------------------------------


class ChunkMaintenanceConfig(Config):
    vector_index_min_rows: int = Field(
        default=DEFAULT_VECTOR_INDEX_MIN_ROWS,
        description="Build the ANN vector index once the table has this many rows.")
    cleanup_older_than_days: float = Field(default=7.0, description="Prune older table versions.")


@asset(
    group_name="knowledge",
    freshness_policy=HOURLY,
    deps=[document_chunks],
    kinds={"lancedb", "python"},
    owners=[OWNER],
    description=(
        "Scheduled maintenance of `knowledge_chunks`: compacts the fragments that per-batch "
        "commits leave, prunes old table versions, folds new rows into the BTREE (doc_key, "
        "chunk_id) and full-text indexes, builds the vector index once the table is large and "
        "rebuilds it once new rows have split it into too many segments. "
        "Takes the same writer lock as `document_chunks`."
    ),
)
def document_chunks_maintenance(context: AssetExecutionContext, config: ChunkMaintenanceConfig,
                                postgres: PostgresResource, lancedb: LanceDBResource,
                                embedder: EmbedderResource) -> MaterializeResult:
    table = open_table(lancedb, embedder.get_embedder().dimension)
    ensure_knowledge_schema(postgres)
    with postgres.transaction() as lock:
        index_queue.writer_lock(lock, postgres.db_schema)
        report = maintain_table(table, config.vector_index_min_rows,
                                timedelta(days=config.cleanup_older_than_days))
    context.log.info(f"fragments {report.fragments_before} -> {report.fragments_after}")
    return MaterializeResult(metadata={
        "fragments_before": report.fragments_before,
        "fragment_count": report.fragments_after,
        "rows_total": report.rows,
        "indexes": MetadataValue.json(report.indexes),
        "vector_index_built": report.vector_index_built,
        "vector_index_segments": report.vector_index_segments,
        "table_version": table.version,
    })


knowledge_assets = [documents, document_chunks, document_chunks_maintenance]
