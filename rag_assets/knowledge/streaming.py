"""Knowledge micro-batches for the streaming sensor: S3 changes into LanceDB within seconds.

Every `listing_interval_s` (0.5 s) the knowledge prefix is listed (resuming where the last listing
stopped, so a large bucket is covered in bounded steps) and diffed with the registry, exactly as
the listing sensor does; the changes are registered, then the queued documents are indexed in
small batches with the same indexer as `document_chunks` (one LanceDB commit per batch, only
changed chunks embedded). Indexing waits for no run: while one holds the table, the stream
leaves the queue to it.

Several instances — threads or processes, on one machine or many — split the work:

* **listing**: one lister at a time (`index_queue.try_lister_lock`; a worker that does not get it
  just indexes), resuming a pass shared through `kb_listing_cursor`. Listing is one request per
  1,000 keys, cheap next to embedding, so one lister keeps up where N indexers are needed;
* **claiming**: each batch is claimed with `FOR UPDATE SKIP LOCKED` and a lease, committed at
  once; a worker killed mid-batch leaves claims that expire, and the documents are taken again;
* **embedding** (read, parse, chunk, embed) happens outside every lock;
* **committing** takes the table's writer lock, re-checks under it that each document is still at
  the version claimed (rows locked until the commit), drops stale work, and writes the rest in
  one `merge_insert` with the registry's outcomes.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta

from rag_assets.knowledge import index_queue, registry
from rag_assets.knowledge.assets import open_table
from rag_assets.knowledge.chunk_store import TableUpkeep
from rag_assets.knowledge.indexing import DocumentIndexer, IndexStats, Outcome
from rag_assets.knowledge.listing import scan_listing
from rag_assets.knowledge.registry import QueuedDocument
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
                 max_changes_per_listing: int = 200,
                 upkeep: TableUpkeep | None = None,
                 claim_lease_s: float = 300.0, commit_wait_s: float = 30.0) -> None:
        self.session = session
        self.s3 = s3
        self.db_schema = postgres.db_schema
        self.client = s3.get_client()
        self.listing_interval_s = listing_interval_s
        self.batch_size = batch_size
        self.max_changes = max_changes_per_listing
        self.upkeep = upkeep or TableUpkeep()
        self.claim_lease = timedelta(seconds=claim_lease_s)
        self.commit_wait_s = commit_wait_s
        self.worker_id = f"{session.run_id}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
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

    # Listing ---------------------------------------------------------------------------------

    def _register_listed_changes(self) -> int:
        if time.monotonic() - self._last_listing < self.listing_interval_s:
            return 0
        self._last_listing = time.monotonic()
        prefix = self.s3.knowledge_prefix
        with self.session.transaction() as cur:
            if not index_queue.try_lister_lock(cur, self.db_schema):
                return 0
            turn = registry.listing_turn(cur, prefix, self.worker_id,
                                         timedelta(seconds=self.listing_interval_s))
            if not turn.due:
                return 0
            scan = scan_listing(
                self.client, self.s3.knowledge_bucket, prefix,
                lambda after, upto: registry.load_range(cur, prefix, after, upto),
                start_after=turn.start_after, max_changes=self.max_changes,
                time_budget_s=self.listing_interval_s)
            self._start_after = scan.next_start_after
            registry.save_listing_cursor(cur, prefix, self.worker_id, scan.next_start_after)
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

    # Indexing --------------------------------------------------------------------------------

    def _index_queued(self) -> int:
        items = self._claim()
        if not items:
            return 0
        self.indexer.stats = IndexStats()
        try:
            outcomes = self.indexer.prepare(items, self._lease_renewer(items))
        except BaseException:
            self._release(items)  # an environment failure: let another worker try them now
            raise
        self._commit(items, outcomes)
        return len(items)

    def _claim(self) -> list[QueuedDocument]:
        with self.session.transaction() as cur:
            if not index_queue.no_run_in_progress(cur, self.db_schema):
                return []
            return registry.claim_batch(cur, self.batch_size, self.worker_id, self.claim_lease)

    def _lease_renewer(self, items: Sequence[QueuedDocument]) -> Callable[[], None]:
        """Called after each document: renews the batch's claims once a third of the lease is
        gone, so a slow batch keeps them while a dead worker's claims expire."""
        keys = [item.key for item in items]
        renewed = time.monotonic()

        def renew() -> None:
            nonlocal renewed
            if time.monotonic() - renewed < self.claim_lease.total_seconds() / 3:
                return
            with self.session.transaction() as cur:
                registry.renew_claims(cur, keys, self.worker_id, self.claim_lease)
            renewed = time.monotonic()

        return renew

    def _release(self, items: Sequence[QueuedDocument]) -> None:
        with self.session.transaction() as cur:
            registry.release_claims(cur, [item.key for item in items], self.worker_id)

    def _commit(self, items: Sequence[QueuedDocument], outcomes: Sequence[Outcome]) -> None:
        with self.session.transaction() as cur:
            if index_queue.wait_for_writer_lock(cur, self.db_schema, self.commit_wait_s):
                current, stale = index_queue.split_current(cur, outcomes)
                self._write(cur, current, stale)
            registry.release_claims(cur, [item.key for item in items], self.worker_id)

    def _write(self, cur, current: Sequence[Outcome], stale: Sequence[Outcome]) -> None:
        self.indexer.write(current)
        dead_letters = index_queue.record_outcomes(cur, current, self.session.run_id)
        compacted = bool(current) and self.upkeep.after_commit(self.table) is not None
        self.session.record(cur, "document_chunks", {
            **self.indexer.stats.metadata(), "dead_letters": dead_letters,
            "documents": index_queue.outcome_lineage(current),
            "documents_stale": len(stale),
            "table_version": self.table.version, "compactions": int(compacted),
        })

    def lag(self) -> LagReport:
        with self.session.transaction() as cur:
            lag = registry.queue_lag(cur)
        return LagReport(passed=lag["oldest_queued_seconds"] <= MAX_LAG_SECONDS,
                         metadata={**lag, "listing_pass_complete": self._start_after is None,
                                   "max_lag_seconds": MAX_LAG_SECONDS})
