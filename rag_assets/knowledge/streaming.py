"""Knowledge micro-batches for the streaming sensor: S3 changes into LanceDB within seconds.

Every `listing_interval_s` (0.5 s) the knowledge prefix is listed (resuming where the last listing
stopped, so a large bucket is covered in bounded steps) and diffed with the registry, exactly as
the listing sensor does; the changes are registered, then the queued documents are indexed in
small batches with the same indexer as `document_chunks` (one LanceDB commit per batch, only
changed chunks embedded). Indexing waits for no one: if a run holds the table's writer lock,
the stream leaves the queue to it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from rag_assets.knowledge import index_queue, registry
from rag_assets.knowledge.assets import open_table
from rag_assets.knowledge.chunk_store import maintain_table
from rag_assets.knowledge.indexing import DocumentIndexer, IndexStats
from rag_assets.knowledge.listing import scan_listing
from rag_assets.platform.micro_batch import LagReport, MicroBatchSession, always
from resources.embedder import EmbedderResource
from resources.lancedb import LanceDBResource
from resources.postgres import PostgresResource
from resources.s3 import S3Storage

MAX_LAG_SECONDS = float(os.environ.get("RAG_MAX_DOCUMENT_LAG_SECONDS", "300"))


class DocumentMicroBatches:
    def __init__(self, session: MicroBatchSession, s3: S3Storage, postgres: PostgresResource,
                 lancedb: LanceDBResource, embedder: EmbedderResource,
                 listing_interval_s: float = 0.5, batch_size: int = 20,
                 max_changes_per_listing: int = 200, compact_every_commits: int = 60) -> None:
        self.session = session
        self.s3 = s3
        self.db_schema = postgres.db_schema
        self.client = s3.get_client()
        self.listing_interval_s = listing_interval_s
        self.batch_size = batch_size
        self.max_changes = max_changes_per_listing
        self.compact_every_commits = compact_every_commits
        self._commits_since_compaction = 0
        self._last_listing = 0.0
        self._start_after: str | None = None
        model = embedder.get_embedder()
        with session.transaction() as cur:
            registry.ensure_knowledge_schema(cur, postgres.db_schema)
        self.table = open_table(lancedb, model.dimension)
        self.indexer = DocumentIndexer(self.table, model, self.client, s3.knowledge_bucket,
                                       session.run_id)

    def close(self) -> None:
        pass

    def step(self, keep_going: Callable[[], bool] = always) -> int:
        """One listing (when due) and one indexing batch: short enough not to ask `keep_going`."""
        return self._register_listed_changes() + self._index_queued()

    def _register_listed_changes(self) -> int:
        if time.monotonic() - self._last_listing < self.listing_interval_s:
            return 0
        self._last_listing = time.monotonic()
        prefix = self.s3.knowledge_prefix
        with self.session.transaction() as cur:
            scan = scan_listing(
                self.client, self.s3.knowledge_bucket, prefix,
                lambda after, upto: registry.load_range(cur, prefix, after, upto),
                start_after=self._start_after, max_changes=self.max_changes,
                time_budget_s=self.listing_interval_s)
            self._start_after = scan.next_start_after
            if not scan.changes:
                return 0
            counts = registry.register_changes(cur, scan.changes, self.session.run_id)
            self.session.record(cur, "documents", {
                "documents_created": counts.created, "documents_modified": counts.modified,
                "documents_deleted": counts.deleted, "documents_unchanged": counts.unchanged,
                "changes": [{"doc_key": c.key, "kind": c.kind.value,
                             "doc_version": c.version_id or c.etag} for c in scan.changes],
            })
        return counts.created + counts.modified + counts.deleted

    def _index_queued(self) -> int:
        with self.session.transaction() as cur:
            if not index_queue.try_writer_lock(cur, self.db_schema):
                return 0
            items = registry.next_batch(cur, self.batch_size)
            if not items:
                return 0
            self.indexer.stats = IndexStats()
            outcomes = self.indexer.process_batch(items)
            dead_letters = index_queue.record_outcomes(cur, outcomes, self.session.run_id)
            compacted = self._compact_when_due()
            self.session.record(cur, "document_chunks", {
                **self.indexer.stats.metadata(), "dead_letters": dead_letters,
                "documents": index_queue.outcome_lineage(outcomes),
                "table_version": self.table.version, "compactions": int(compacted),
            })
        return len(items)

    def _compact_when_due(self) -> bool:
        """Every commit adds a fragment; hundreds of them slow every query and merge (DESIGN §4),
        so the stream compacts the table itself, under the writer lock it already holds."""
        self._commits_since_compaction += 1
        if self._commits_since_compaction < self.compact_every_commits:
            return False
        maintain_table(self.table)
        self._commits_since_compaction = 0
        return True

    def lag(self) -> LagReport:
        with self.session.transaction() as cur:
            lag = registry.queue_lag(cur)
        return LagReport(passed=lag["oldest_queued_seconds"] <= MAX_LAG_SECONDS,
                         metadata={**lag, "listing_pass_complete": self._start_after is None,
                                   "max_lag_seconds": MAX_LAG_SECONDS})
