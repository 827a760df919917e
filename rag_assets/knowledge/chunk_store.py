"""The LanceDB table of knowledge chunks: schema, per-document atomic replace, and maintenance.

One row per chunk, keyed by `chunk_id` = "<doc_key>#<chunk_no>". A document's chunks are always
written in ONE table commit (`merge_insert` with a by-source delete scoped to the document), so
a reader sees either the old set or the new set, never a mix and never nothing. Vectors are
reused for chunks whose content hash is unchanged, so only edited chunks are re-embedded.

One writer per table (`index_queue.writer_lock`), a BTREE index on the keys, and compaction
(`maintain_table`) as scheduled maintenance and, when the writer has left enough behind, by the
writer itself (`TableUpkeep`) rather than after every write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from rag_assets.knowledge.chunking import Chunk

DEFAULT_TABLE_NAME = "knowledge_chunks"
DEFAULT_VECTOR_INDEX_MIN_ROWS = 100_000
# Every text query scans the rows its full-text index does not cover yet, one by one: about
# 22 µs a row on this project's 2-core machine (docs/benchmarks.md), so 1,000 add ~20 ms.
MAX_UNINDEXED_ROWS = 1_000
# Every commit adds a fragment; hundreds of them slow every query and merge (`checks.py`).
COMPACT_EVERY_COMMITS = 60
# Each `optimize` after the first adds the rows it folds into the vector index as one more
# segment, and a vector query searches every segment: 41 of them made vector search 2.6x slower
# at 100,000 rows (docs/benchmarks.md). Past this many, scheduled maintenance rebuilds the index.
MAX_VECTOR_INDEX_SEGMENTS = 8
KEY_COLUMNS = ("doc_key", "chunk_id")


def chunk_schema(dimension: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("doc_key", pa.string(), nullable=False),
            pa.field("doc_version", pa.string(), nullable=False),
            pa.field("chunk_no", pa.int32(), nullable=False),
            pa.field("chunk_id", pa.string(), nullable=False),
            pa.field("content_hash", pa.string(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("heading", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False),
            pa.field("embedding_model", pa.string(), nullable=False),
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("embedded_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )


def chunk_id(doc_key: str, chunk_no: int) -> str:
    return f"{doc_key}#{chunk_no}"


def sql_string_literal(value: str) -> str:
    """Quote a value for a Lance SQL filter. Standard SQL: a quote is escaped by doubling it."""
    return "'" + value.replace("'", "''") + "'"


def doc_key_filter(doc_key: str) -> str:
    return f"doc_key = {sql_string_literal(doc_key)}"


def open_chunk_table(
    uri: str,
    dimension: int,
    table_name: str = DEFAULT_TABLE_NAME,
    storage_options: Mapping[str, str] | None = None,
    read_consistency_interval: timedelta | None = None,
) -> Any:
    """Open (creating if needed) the chunks table at a local path or `s3://` URI.

    A table built for another vector dimension is refused: switching embedding models needs a
    new table (or a full re-embed), not a mix of vector spaces.
    """
    import lancedb

    db = lancedb.connect(
        uri,
        storage_options=dict(storage_options or {}),
        read_consistency_interval=read_consistency_interval,
    )
    schema = chunk_schema(dimension)
    try:
        table = db.open_table(table_name)
    except ValueError:  # lancedb's "table not found"
        table = db.create_table(table_name, schema=schema, exist_ok=True)
    existing = table.schema.field("vector").type
    if existing != schema.field("vector").type:
        raise ValueError(
            f"table {table_name!r} holds vectors of type {existing}, not {dimension} float32"
        )
    ensure_key_and_text_indexes(table)
    return table


# --------------------------------------------------------------------------------------------
# Planning a document update: which chunks need embedding
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReusedChunk:
    chunk: Chunk
    vector: np.ndarray
    embedding_model: str
    embedded_at: datetime


class UpdatePlan(NamedTuple):
    to_embed: list[Chunk]
    reused: list[ReusedChunk]


def plan_document_update(
    existing_rows: Iterable[Mapping[str, Any]],
    new_chunks: Sequence[Chunk],
    embedding_model: str | None = None,
) -> UpdatePlan:
    """Split the new chunks into those needing an embedding and those whose vector can be reused.

    A vector is reused when an existing row has the same content hash (wherever its chunk number
    now is) and, if `embedding_model` is given, was made by that model.
    """
    vectors_by_hash: dict[str, Mapping[str, Any]] = {}
    for row in existing_rows:
        if embedding_model is None or row["embedding_model"] == embedding_model:
            vectors_by_hash.setdefault(row["content_hash"], row)
    to_embed: list[Chunk] = []
    reused: list[ReusedChunk] = []
    for chunk in new_chunks:
        row = vectors_by_hash.get(chunk.content_hash)
        if row is None:
            to_embed.append(chunk)
        else:
            reused.append(
                ReusedChunk(
                    chunk,
                    np.asarray(row["vector"], dtype=np.float32),
                    row["embedding_model"],
                    row["embedded_at"],
                )
            )
    return UpdatePlan(to_embed, reused)


def build_document_rows(
    doc_key: str,
    doc_version: str,
    plan: UpdatePlan,
    new_vectors: np.ndarray,
    embedding_model: str,
    run_id: str,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Rows for the document's complete new chunk set, ordered by chunk number.

    `run_id` is the run that wrote the rows; `embedded_at` stays the time the vector was computed,
    so a reused vector keeps its original time.
    """
    if len(new_vectors) != len(plan.to_embed):
        raise ValueError(
            f"{len(plan.to_embed)} chunks to embed but {len(new_vectors)} vectors"
        )
    now = now or datetime.now(UTC)
    entries = [
        (chunk, vector, embedding_model, now)
        for chunk, vector in zip(plan.to_embed, new_vectors)
    ]
    entries += [
        (item.chunk, item.vector, item.embedding_model, item.embedded_at)
        for item in plan.reused
    ]
    return [
        {
            "doc_key": doc_key,
            "doc_version": doc_version,
            "chunk_no": chunk.chunk_no,
            "chunk_id": chunk_id(doc_key, chunk.chunk_no),
            "content_hash": chunk.content_hash,
            "text": chunk.text,
            "heading": chunk.heading,
            "vector": np.asarray(vector, dtype=np.float32),
            "embedding_model": model,
            "run_id": run_id,
            "embedded_at": embedded_at,
        }
        for chunk, vector, model, embedded_at in sorted(
            entries, key=lambda entry: entry[0].chunk_no
        )
    ]


# --------------------------------------------------------------------------------------------
# Writes
# --------------------------------------------------------------------------------------------


def _rows_to_arrow(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    dimension = schema.field("vector").type.list_size
    vectors = np.asarray([row["vector"] for row in rows], dtype=np.float32).reshape(
        len(rows), dimension
    )
    columns = {
        name: [row[name] for row in rows] for name in schema.names if name != "vector"
    }
    columns["vector"] = pa.FixedSizeListArray.from_arrays(
        pa.array(vectors.ravel(), pa.float32()), dimension
    )
    return pa.Table.from_pydict(columns, schema=schema)


def replace_document(
    table: Any, doc_key: str, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Make `rows` the document's complete chunk set in one commit; returns the new table version.

    Rows matching an existing chunk_id are updated, new ones inserted, and the document's rows
    not in `rows` deleted — all in the same merge, so readers never see a half-updated document.
    """
    if not rows:
        return delete_document(table, doc_key)
    if any(row["doc_key"] != doc_key for row in rows):
        raise ValueError("every row must belong to the document being replaced")
    ids = [row["chunk_id"] for row in rows]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate chunk_id in the rows of one document")
    data = _rows_to_arrow(rows, table.schema)
    result = (
        table.merge_insert("chunk_id")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .when_not_matched_by_source_delete(doc_key_filter(doc_key))
        .execute(data)
    )
    return result.version


def delete_document(table: Any, doc_key: str) -> int:
    """Remove every chunk of the document (one commit); returns the new table version."""
    table.delete(doc_key_filter(doc_key))
    return table.version


def read_document_rows(table: Any, doc_key: str) -> list[dict[str, Any]]:
    """The document's current rows, ordered by chunk number."""
    rows = table.search().where(doc_key_filter(doc_key)).limit(None).to_list()
    return sorted(rows, key=lambda row: row["chunk_no"])


# --------------------------------------------------------------------------------------------
# Maintenance
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaintenanceReport:
    fragments_before: int
    fragments_after: int
    rows: int
    indexes: list[str]
    vector_index_built: bool
    vector_index_segments: int


def fragment_count(table: Any) -> int:
    return int(table.stats()["fragment_stats"]["num_fragments"])


def index_names(table: Any) -> dict[str, str]:
    """Indexed column → index type (e.g. {"doc_key": "BTree", "text": "FTS"})."""
    return {index.columns[0]: index.index_type for index in table.list_indices()}


def ensure_key_and_text_indexes(table: Any) -> None:
    """BTREE on doc_key and chunk_id, FTS on text. Cheap on an empty table; Lance searches rows
    added after the index was built too (flat), and `optimize` folds them into the index."""
    from lancedb.index import FTS, BTree

    for column in KEY_COLUMNS:
        create_index_once(table, column, BTree())
    create_index_once(table, "text", FTS())


INDEX_ATTEMPTS = 5


def create_index_once(table: Any, column: str, config: Any) -> None:
    """Create the index unless the table has one on `column`. Processes opening a new table at
    once race to create the same index: Lance refuses all but one commit ("Retryable commit
    conflict"), and the loser finds the winner's index on the latest version."""
    for attempt in range(INDEX_ATTEMPTS):
        if column in index_names(table):
            return
        try:
            table.create_index(column, config=config)
            return
        except RuntimeError as error:
            if "Retryable commit conflict" not in str(error) or attempt == INDEX_ATTEMPTS - 1:
                raise
            table.checkout_latest()


def _index_on(table: Any, column: str) -> Any | None:
    """The index on `column` as `list_indices` describes it (None: there is none)."""
    return next((index for index in table.list_indices() if list(index.columns) == [column]),
                None)


def index_segments(table: Any, column: str) -> int:
    """Segments of the index on `column` (0: no index)."""
    index = _index_on(table, column)
    return int(index.num_segments) if index else 0


def ensure_indexes(
    table: Any, vector_index_min_rows: int = DEFAULT_VECTOR_INDEX_MIN_ROWS,
    max_vector_segments: int | None = MAX_VECTOR_INDEX_SEGMENTS,
) -> bool:
    """Create missing indexes: BTREE on the keys, FTS on text, a vector index once large enough,
    and rebuild the vector index as one once it has more than `max_vector_segments` segments
    (None: never).

    Below `vector_index_min_rows` an exact (flat) vector scan is fast and exact, and an IVF index
    trained on few rows would only cost recall. Returns whether a vector index was built now.
    """
    from lancedb.index import IvfHnswSq

    ensure_key_and_text_indexes(table)
    rows = table.count_rows()
    segments = index_segments(table, "vector")
    if segments == 0 and rows < vector_index_min_rows:
        return False
    if segments and (max_vector_segments is None or segments <= max_vector_segments):
        return False
    table.create_index(
        "vector",
        config=IvfHnswSq(distance_type="cosine", num_partitions=max(1, rows // 50_000)),
        replace=True,
    )
    return True


def maintain_table(
    table: Any,
    vector_index_min_rows: int = DEFAULT_VECTOR_INDEX_MIN_ROWS,
    cleanup_older_than: timedelta = timedelta(days=7),
    max_vector_segments: int | None = MAX_VECTOR_INDEX_SEGMENTS,
) -> MaintenanceReport:
    """Compact fragments, prune old versions, bring indexes up to date (lancedb's optimize folds
    new rows into existing indexes) and create any missing index (`ensure_indexes`)."""
    before = fragment_count(table)
    table.optimize(cleanup_older_than=cleanup_older_than)
    vector_index_built = ensure_indexes(table, vector_index_min_rows, max_vector_segments)
    if vector_index_built:
        # The first `optimize` after a vector index is built rewrites it, new rows or not
        # (~60 s at 100,000 rows here; later ones take a second): done now, not in a writer's
        # next upkeep.
        table.optimize(cleanup_older_than=cleanup_older_than)
    return MaintenanceReport(
        fragments_before=before,
        fragments_after=fragment_count(table),
        rows=table.count_rows(),
        indexes=sorted(index_names(table)),
        vector_index_built=vector_index_built,
        vector_index_segments=index_segments(table, "vector"),
    )


def unindexed_text_rows(table: Any) -> int:
    """Rows the full-text index does not cover yet (every row while there is no such index)."""
    index = _index_on(table, "text")
    return int(index.num_unindexed_rows) if index else table.count_rows()


@dataclass
class TableUpkeep:
    """The writer's own maintenance, under the writer lock it holds: after a commit, the table
    is compacted and its indexes brought up to date (`maintain_table`) once `every_commits`
    commits added their fragments, or as soon as `max_unindexed_rows` rows are outside the
    full-text index. Without the second rule a freshly indexed corpus is scanned row by row by
    every text and hybrid query until the hourly maintenance run. The writer never rebuilds a
    vector index of many segments: at 100,000 rows that held the writer lock for ~2 minutes
    (the rebuild, then the first `optimize` after it); the scheduled maintenance does."""

    every_commits: int = COMPACT_EVERY_COMMITS
    max_unindexed_rows: int = MAX_UNINDEXED_ROWS
    commits_since: int = 0

    def after_commit(self, table: Any) -> MaintenanceReport | None:
        """The maintenance report when this commit made it due, else None."""
        self.commits_since += 1
        if self.commits_since < self.every_commits \
                and unindexed_text_rows(table) < self.max_unindexed_rows:
            return None
        self.commits_since = 0
        return maintain_table(table, max_vector_segments=None)
