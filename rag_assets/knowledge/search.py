"""Top-k retrieval over the chunks table: vector, full-text (BM25) and hybrid (RRF).

Every hit carries its provenance (document key and version, chunk number, the Dagster run that
wrote it, when it was embedded) so the assistant can cite and judge freshness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any

import numpy as np

from rag_assets.knowledge.embedding import Embedder

# Reciprocal rank fusion constant from Cormack et al. (2009); damps the weight of top ranks.
RRF_K = 60
_PROJECTION = [
    "chunk_id",
    "doc_key",
    "doc_version",
    "chunk_no",
    "heading",
    "text",
    "run_id",
    "embedded_at",
    "embedding_model",
]


class SearchMode(str, Enum):
    VECTOR = "vector"
    TEXT = "text"
    HYBRID = "hybrid"


@dataclass(frozen=True)
class SearchHit:
    chunk_id: str
    doc_key: str
    doc_version: str
    chunk_no: int
    heading: str
    text: str
    score: float
    run_id: str
    embedded_at: datetime
    embedding_model: str


def _hit(row: dict[str, Any], score: float) -> SearchHit:
    return SearchHit(
        chunk_id=row["chunk_id"],
        doc_key=row["doc_key"],
        doc_version=row["doc_version"],
        chunk_no=int(row["chunk_no"]),
        heading=row["heading"],
        text=row["text"],
        score=float(score),
        run_id=row["run_id"],
        embedded_at=row["embedded_at"],
        embedding_model=row["embedding_model"],
    )


def vector_search(
    table: Any, query_vector: np.ndarray, k: int = 5, where: str | None = None
) -> list[SearchHit]:
    """Nearest chunks by cosine similarity; score is the similarity (1 = same direction)."""
    query = table.search(
        np.asarray(query_vector, dtype=np.float32), vector_column_name="vector"
    ).distance_type("cosine")
    if where:
        query = query.where(where, prefilter=True)
    rows = query.select([*_PROJECTION, "_distance"]).limit(k).to_list()
    return [_hit(row, 1.0 - row["_distance"]) for row in rows]


def text_search(
    table: Any, text: str, k: int = 5, where: str | None = None
) -> list[SearchHit]:
    """BM25 full-text search over chunk text; score is the BM25 score."""
    if not text.strip():
        return []
    query = table.search(text, query_type="fts", fts_columns="text")
    if where:
        query = query.where(where, prefilter=True)
    rows = query.select([*_PROJECTION, "_score"]).limit(k).to_list()
    return [_hit(row, row["_score"]) for row in rows]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[SearchHit]], k: int, rrf_k: int = RRF_K
) -> list[SearchHit]:
    """Fuse ranked lists: score = Σ 1/(rrf_k + rank). Ties break by chunk_id for determinism."""
    scores: dict[str, float] = {}
    hits: dict[str, SearchHit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (rrf_k + rank)
            hits.setdefault(hit.chunk_id, hit)
    ordered = sorted(scores, key=lambda chunk: (-scores[chunk], chunk))
    return [replace(hits[chunk], score=scores[chunk]) for chunk in ordered[:k]]


def hybrid_search(
    table: Any,
    text: str,
    query_vector: np.ndarray,
    k: int = 5,
    where: str | None = None,
    candidates: int | None = None,
) -> list[SearchHit]:
    """Vector and full-text results fused by reciprocal rank; score is the RRF score."""
    depth = candidates or max(4 * k, 20)
    return reciprocal_rank_fusion(
        [
            vector_search(table, query_vector, depth, where),
            text_search(table, text, depth, where),
        ],
        k,
    )


def search_chunks(
    table: Any,
    embedder: Embedder,
    question: str,
    k: int = 5,
    mode: SearchMode | str = SearchMode.HYBRID,
    where: str | None = None,
) -> list[SearchHit]:
    """Top-k chunks for a question, embedding it with the same model that embedded the chunks."""
    mode = SearchMode(mode)
    if mode is SearchMode.TEXT:
        return text_search(table, question, k, where)
    query_vector = embedder.embed([question])[0]
    if mode is SearchMode.VECTOR:
        return vector_search(table, query_vector, k, where)
    return hybrid_search(table, question, query_vector, k, where)
