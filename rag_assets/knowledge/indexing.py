"""Applying queued documents to the chunks table: read, parse, chunk, embed what changed, write.

For a batch of queued documents (`registry.next_batch`):

* a document to index is read from S3 (the version there now), parsed and chunked; its chunks
  are planned against the rows LanceDB already has for it — and, for a rename, against the rows
  of documents deleted in the same batch — so only chunks whose content hash is new are embedded;
* embedding is retried with capped exponential backoff; a document whose embedding still fails
  is *failed*: nothing of it is written, its previous chunks stay served, and the registry
  retries it later;
* an unusable file (binary, undecodable, empty, too large) is *rejected* with the reason and a
  dead letter; its previous chunks, if any, stay served until a usable version arrives;
* the new chunk sets of every indexed document and the removal of every deleted one go to
  LanceDB in ONE `merge_insert` (the by-source delete scoped to the batch's keys): a reader sees
  each document wholly before or wholly after, never half-updated, and the table gets one
  version (one fragment) per batch, not one per document.

The registry is updated after the table write; if the run dies in between, the documents stay
queued and are applied again, which rewrites the same rows (vectors reused by hash).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from rag_assets.knowledge.chunk_store import (
    _rows_to_arrow,
    build_document_rows,
    plan_document_update,
    sql_string_literal,
)
from rag_assets.knowledge.chunking import (
    ChunkingConfig,
    approximate_token_count,
    chunk_document,
)
from rag_assets.knowledge.document_diff import DEAD_LETTER_SOURCE, normalise_etag
from rag_assets.knowledge.embedding import Embedder, l2_normalise
from rag_assets.platform.retry import RetryPolicy
from rag_assets.knowledge.parse_sandbox import SandboxedParser, shared_parser
from rag_assets.knowledge.parsing import DEFAULT_MAX_BYTES, UnusableDocument
from rag_assets.knowledge.registry import QueuedDocument
from rag_assets.platform.dead_letters import DeadLetter
from rag_assets.platform.item_guard import failure_reason, is_environment_failure

# Bodies of rejected files up to this size are kept in the dead letter (for replay/inspection).
DEAD_LETTER_PAYLOAD_LIMIT = 256 * 1024
_ROW_COLUMNS = ["doc_key", "chunk_no", "content_hash", "vector", "embedding_model", "embedded_at"]


def doc_keys_filter(keys: Sequence[str]) -> str:
    """`doc_key IN ('a', 'b')`, every key escaped."""
    return "doc_key IN (" + ", ".join(sql_string_literal(key) for key in sorted(set(keys))) + ")"


# --------------------------------------------------------------------------------------------
# Outcomes of one document
# --------------------------------------------------------------------------------------------


@dataclass
class Indexed:
    item: QueuedDocument
    etag: str
    version_id: str | None
    size: int
    content_hash: str
    rows: list[dict[str, Any]]
    chunks_embedded: int
    chunks_reused: int

    @property
    def document_version(self) -> str:
        return self.version_id or self.etag


@dataclass
class Rejected:
    item: QueuedDocument
    etag: str
    version_id: str | None
    size: int | None
    content_hash: str | None
    reason: str
    dead_letter: DeadLetter


@dataclass
class Failed:
    item: QueuedDocument
    reason: str


@dataclass
class Deleted:
    item: QueuedDocument
    chunks_deleted: int = 0


Outcome = Indexed | Rejected | Failed | Deleted


@dataclass
class IndexStats:
    documents_indexed: int = 0
    documents_deleted: int = 0
    documents_rejected: int = 0
    documents_failed: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_deleted: int = 0
    embed_calls: int = 0
    embed_retries: int = 0
    embed_seconds: float = 0.0
    write_batches: int = 0
    failed_keys: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # key -> reason

    def add(self, outcome: Outcome) -> None:
        if isinstance(outcome, Indexed):
            self.documents_indexed += 1
            self.chunks_embedded += outcome.chunks_embedded
            self.chunks_reused += outcome.chunks_reused
        elif isinstance(outcome, Deleted):
            self.documents_deleted += 1
            self.chunks_deleted += outcome.chunks_deleted
        elif isinstance(outcome, Rejected):
            self.documents_rejected += 1
            self.rejected[outcome.item.key] = outcome.reason
        else:
            self.documents_failed += 1
            self.failed_keys.append(outcome.item.key)

    def metadata(self) -> dict[str, Any]:
        return {
            "documents_indexed": self.documents_indexed,
            "documents_deleted": self.documents_deleted,
            "documents_rejected": self.documents_rejected,
            "documents_failed": self.documents_failed,
            "chunks_embedded": self.chunks_embedded,
            "chunks_reused": self.chunks_reused,
            "chunks_deleted": self.chunks_deleted,
            "embed_calls": self.embed_calls,
            "embed_retries": self.embed_retries,
            "embed_seconds": round(self.embed_seconds, 3),
            "write_batches": self.write_batches,
        }


# --------------------------------------------------------------------------------------------
# Embedding with retries
# --------------------------------------------------------------------------------------------


class EmbeddingGaveUp(RuntimeError):
    pass


def embed_with_retry(
    embedder: Embedder,
    texts: Sequence[str],
    policy: RetryPolicy,
    stats: IndexStats,
    sleep: Callable[[float], None] = time.sleep,
) -> np.ndarray:
    """Embed, retrying any failure with capped exponential backoff and jitter."""
    if not texts:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    for attempt in range(1, policy.max_attempts + 1):
        stats.embed_calls += 1
        started = time.perf_counter()
        try:
            vectors = np.asarray(embedder.embed(list(texts)), dtype=np.float32)
            if vectors.shape != (len(texts), embedder.dimension):
                raise ValueError(f"embedder returned shape {vectors.shape}")
            return vectors
        except Exception as error:  # noqa: BLE001 — any backend failure is retried, then tracked
            if attempt == policy.max_attempts:
                raise EmbeddingGaveUp(
                    f"embedding failed after {attempt} attempts: {type(error).__name__}: {error}"
                ) from error
            stats.embed_retries += 1
            sleep(policy.delay_before_retry(attempt))
        finally:
            stats.embed_seconds += time.perf_counter() - started
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# The indexer
# --------------------------------------------------------------------------------------------


@dataclass
class IndexerSettings:
    max_bytes: int = DEFAULT_MAX_BYTES
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=3))
    parser: SandboxedParser | None = None  # None: the process's shared one


class DocumentIndexer:
    def __init__(
        self,
        table: Any,
        embedder: Embedder,
        s3_client: Any,
        bucket: str,
        run_id: str,
        settings: IndexerSettings | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table = table
        self.embedder = embedder
        self.s3 = s3_client
        self.bucket = bucket
        self.run_id = run_id
        self.settings = settings or IndexerSettings()
        self.sleep = sleep
        self.stats = IndexStats()
        self.count_tokens = getattr(embedder, "count_tokens", approximate_token_count)

    # One batch ---------------------------------------------------------------------------

    def process_batch(self, items: Sequence[QueuedDocument]) -> list[Outcome]:
        """Work out every document of the batch, then write the table once. Returns outcomes."""
        outcomes = self.prepare(items)
        self.write(outcomes)
        return outcomes

    def prepare(self, items: Sequence[QueuedDocument],
                after_each: Callable[[], None] = lambda: None) -> list[Outcome]:
        """Read, parse, chunk and embed every document of the batch; writes nothing, so it needs
        no writer lock (the table is only read, for vectors to reuse)."""
        self.table.checkout_latest()  # other processes may have written since
        deleting = [item for item in items if item.status == "deleting"]
        # Vectors of documents deleted in this batch may serve their renamed copies.
        donor_rows = self._rows_of([item.key for item in deleting]) if deleting else []
        outcomes: list[Outcome] = []
        for item in items:
            if item.status == "deleting":
                outcomes.append(Deleted(item))
            else:
                outcomes.append(self._index_guarded(item, donor_rows))
            after_each()
        return outcomes

    def write(self, outcomes: Sequence[Outcome]) -> None:
        """The batch's one table commit, on top of the latest version (the writer lock held)."""
        self.table.checkout_latest()
        self._write(outcomes)
        for outcome in outcomes:
            self.stats.add(outcome)

    def _rows_of(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        return (
            self.table.search()
            .where(doc_keys_filter(keys))
            .select(_ROW_COLUMNS)
            .limit(None)
            .to_list()
        )

    def _index_guarded(self, item: QueuedDocument, donor_rows: list[dict]) -> Outcome:
        """`_index_one`, with a failure of this document's own (not S3's or the network's)
        turned into its rejection with the reason: its previous version keeps serving."""
        try:
            return self._index_one(item, donor_rows)
        except Exception as error:  # noqa: BLE001 — classified right below
            if is_environment_failure(error):
                raise
            return self._rejected(item, item.etag, item.version_id, 0, None,
                                  failure_reason("document indexing", error), None)

    def _index_one(self, item: QueuedDocument, donor_rows: list[dict]) -> Outcome:
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=item.key)
        except self.s3.exceptions.NoSuchKey:
            return Deleted(item)  # removed after it was queued: its chunks go too
        except ClientError as error:
            # The server refused this one key (e.g. a notified "../" key it will not serve):
            # the document is failed and retried later, the rest of the batch goes on.
            # An unreachable server raises past this, failing the run with nothing recorded.
            return Failed(item, f"S3 GetObject refused: {error.response['Error'].get('Code')}")
        etag = normalise_etag(response.get("ETag")) or item.etag
        version_id = response.get("VersionId")
        if version_id == "null":  # an unversioned object in a versioned bucket
            version_id = None
        size = int(response.get("ContentLength") or 0)
        version = version_id or etag
        if size > self.settings.max_bytes:
            response["Body"].close()
            reason = f"document is {size} bytes, over the {self.settings.max_bytes}-byte limit"
            return self._rejected(item, etag, version_id, size, None, reason, None)
        body = response["Body"].read()
        digest = hashlib.sha256(body).hexdigest()
        try:
            parser = self.settings.parser or shared_parser()
            parsed = parser.parse(item.key, body, self.settings.max_bytes)
        except UnusableDocument as error:
            return self._rejected(item, etag, version_id, len(body), digest, error.reason, body)
        chunks = chunk_document(parsed, self.settings.chunking, self.count_tokens)
        if not chunks:
            return self._rejected(item, etag, version_id, len(body), digest,
                                  "document has no text to chunk", body)
        existing = self._rows_of([item.key])
        plan = plan_document_update([*existing, *donor_rows], chunks, self.embedder.model_id)
        try:
            vectors = embed_with_retry(
                self.embedder, [chunk.embedding_text for chunk in plan.to_embed],
                self.settings.retry, self.stats, self.sleep,
            )
        except EmbeddingGaveUp as error:
            return Failed(item, str(error))
        rows = build_document_rows(
            item.key, version, plan, vectors, self.embedder.model_id, self.run_id
        )
        return Indexed(item, etag, version_id, len(body), digest, rows,
                       len(plan.to_embed), len(plan.reused))

    def _rejected(self, item, etag, version_id, size, digest, reason, body) -> Rejected:
        payload = body if body is not None and len(body) <= DEAD_LETTER_PAYLOAD_LIMIT else None
        letter = DeadLetter(DEAD_LETTER_SOURCE, reason, payload,
                            object_key=item.key, object_version=version_id or etag)
        return Rejected(item, etag, version_id, size, digest, reason, letter)

    # The single write --------------------------------------------------------------------

    def _write(self, outcomes: Sequence[Outcome]) -> None:
        indexed = [o for o in outcomes if isinstance(o, Indexed)]
        deleted = [o for o in outcomes if isinstance(o, Deleted)]
        keys = [o.item.key for o in [*indexed, *deleted]]
        if not keys:
            return
        where = doc_keys_filter(keys)
        if deleted:
            counts = self._count_by_key([o.item.key for o in deleted])
            for outcome in deleted:
                outcome.chunks_deleted = counts.get(outcome.item.key, 0)
        rows = [row for outcome in indexed for row in outcome.rows]
        if rows:
            data = _rows_to_arrow(rows, self.table.schema)
            (
                self.table.merge_insert("chunk_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(where)
                .execute(data)
            )
        else:
            self.table.delete(where)
        self.stats.write_batches += 1

    def _count_by_key(self, keys: Sequence[str]) -> dict[str, int]:
        rows = self.table.search().where(doc_keys_filter(keys)).select(["doc_key"]).limit(None)
        counts: dict[str, int] = {}
        for row in rows.to_list():
            counts[row["doc_key"]] = counts.get(row["doc_key"], 0) + 1
        return counts


def table_doc_keys(table: Any) -> set[str]:
    """Every document key that has chunks in the table."""
    column = table.search().select(["doc_key"]).limit(None).to_arrow().column("doc_key")
    return set(column.unique().to_pylist())


# --------------------------------------------------------------------------------------------
# A fast deterministic stand-in embedder (tests and the 10k-document benchmark only)
# --------------------------------------------------------------------------------------------


class HashingEmbedder:
    """Feature-hashed bag of words → unit vector. NOT a language model: a fast, deterministic
    stand-in with lexical similarity only, for tests and benchmarks that are about work avoided
    rather than embedding quality. Counts the texts it embedded."""

    def __init__(self, dimension: int = 64, model_id: str = "hashing-bow-v1") -> None:
        self._dimension = dimension
        self._model_id = model_id
        self.texts_embedded = 0

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                digest = hashlib.blake2b(word.strip(".,;:!?()\"'").encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                vectors[row, value % self._dimension] += 1.0 if (value >> 32) & 1 else -1.0
            if not vectors[row].any():
                vectors[row, 0] = 1.0
        self.texts_embedded += len(texts)
        return l2_normalise(vectors)

