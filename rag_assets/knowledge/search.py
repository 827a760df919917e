"""Top-k retrieval over the chunks table: vector, full-text (BM25), hybrid (score fusion), RRF.

* vector — exact cosine similarity (the flat scan below the vector-index threshold);
* text — the full-text index proposes candidates, scored by BM25 over heading path and text
  with the candidate pool's own statistics (`lexical.py`), so compaction does not change it;
* hybrid (the default) — the union of both candidate lists, each candidate scored by
  `VECTOR_WEIGHT` x its min-max-normalised cosine + the rest x its BM25 over the pool's best;
* rrf — reciprocal rank fusion of the two lists (the former default, kept for comparison).

Ties break by chunk id, so a ranking is a function of the live rows and the question only.
Every hit carries its provenance (document key and version, chunk number, the Dagster run that
wrote it, when it was embedded) so the assistant can cite and judge freshness.
"""

from __future__ import annotations

import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any

import numpy as np
import pyarrow.compute as pc

from rag_assets.knowledge.embedding import Embedder, embed_questions
from rag_assets.knowledge.lexical import CorpusStatistics, bm25, corpus_statistics

# Reciprocal rank fusion constant from Cormack et al. (2009); damps the weight of top ranks.
RRF_K = 60
# Candidates each first stage proposes to the fusion; measured in docs/benchmarks.md.
DEFAULT_CANDIDATES = 20
# Share of the semantic score in hybrid fusion: 0.7-0.8 beat both inputs on both labelled
# corpora of bench/retrieval_quality.py (docs/benchmarks.md); 0.75 is the middle of that range.
VECTOR_WEIGHT = 0.75
# A table's term statistics are recounted when its version changed and they are this old.
STATISTICS_MAX_AGE_S = 30.0
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
    RRF = "rrf"


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


def _ranked(scored: Sequence[tuple[dict[str, Any], float]], k: int) -> list[SearchHit]:
    """Highest score first, ties by chunk id: the order never depends on how rows are stored."""
    ordered = sorted(scored, key=lambda item: (-item[1], item[0]["chunk_id"]))
    return [_hit(row, score) for row, score in ordered[:k]]


def vector_search(
    table: Any, query_vector: np.ndarray, k: int = 5, where: str | None = None
) -> list[SearchHit]:
    """Nearest chunks by cosine similarity; score is the similarity (1 = same direction)."""
    return _ranked(
        [(row, 1.0 - row["_distance"]) for row in _vector_rows(table, query_vector, k, where)],
        k,
    )


def _vector_rows(
    table: Any, query_vector: np.ndarray, limit: int, where: str | None,
    columns: Sequence[str] = (),
) -> list[dict[str, Any]]:
    query = table.search(
        np.asarray(query_vector, dtype=np.float32), vector_column_name="vector"
    ).distance_type("cosine")
    if where:
        query = query.where(where, prefilter=True)
    return query.select([*_PROJECTION, *columns, "_distance"]).limit(limit).to_list()


def _text_rows(
    table: Any, text: str, limit: int, where: str | None, columns: Sequence[str] = ()
) -> list[dict[str, Any]]:
    if not text.strip():
        return []
    query = table.search(text, query_type="fts", fts_columns="text")
    if where:
        query = query.where(where, prefilter=True)
    return query.select([*_PROJECTION, *columns, "_score"]).limit(limit).to_list()


class _StatisticsCache:
    """Term statistics per open table, counted from its live rows. Once the table's version
    moved and the counts are `STATISTICS_MAX_AGE_S` old, they are recounted in a background
    thread (a recount reads two columns of every row) while queries keep the previous counts;
    only a table's first query waits for its count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._recounting: weakref.WeakSet = weakref.WeakSet()

    @staticmethod
    def count(table: Any) -> CorpusStatistics:
        texts = table.search().select(["heading", "text"]).limit(None).to_arrow()
        return corpus_statistics(
            pc.binary_join_element_wise(texts["heading"], texts["text"], "\n"))

    def _recount(self, table: Any, version: int) -> None:
        try:
            statistics = self.count(table)
            with self._lock:
                self._entries[table] = (version, time.monotonic(), statistics)
        finally:
            self._recounting.discard(table)

    def get(self, table: Any) -> CorpusStatistics:
        version = table.version
        with self._lock:
            entry = self._entries.get(table)
            if entry is not None:
                stale = entry[0] != version and time.monotonic() - entry[1] >= STATISTICS_MAX_AGE_S
                if stale and table not in self._recounting:
                    self._recounting.add(table)
                    threading.Thread(target=self._recount, args=(table, version), daemon=True,
                                     name="term-statistics").start()
                return entry[2]
        statistics = self.count(table)
        with self._lock:
            self._entries.setdefault(table, (version, time.monotonic(), statistics))
            return self._entries[table][2]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


table_statistics = _StatisticsCache()
# The two first stages of a fused search run side by side (LanceDB releases the GIL).
_first_stages = ThreadPoolExecutor(max_workers=4, thread_name_prefix="first-stage")


def _lexical_scores(table: Any, question: str, rows: Sequence[dict[str, Any]]) -> list[float]:
    """BM25 over each candidate's heading path and text, with the live rows' statistics."""
    return bm25(question, [f"{row['heading']}\n{row['text']}" for row in rows],
                table_statistics.get(table))


def text_search(
    table: Any, text: str, k: int = 5, where: str | None = None,
    candidates: int = DEFAULT_CANDIDATES,
) -> list[SearchHit]:
    """Full-text search: the index's candidates, scored by BM25 over the candidate pool."""
    rows = _text_rows(table, text, max(candidates, k), where)
    scored = [(row, score) for row, score in zip(rows, _lexical_scores(table, text, rows)) if score > 0]
    return _ranked(scored, k)


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


def _normalised(values: Sequence[float]) -> np.ndarray:
    """Min-max to [0, 1] over the pool (all equal → all 1), so both scores share one scale."""
    array = np.asarray(values, dtype=np.float64)
    spread = array.max() - array.min()
    return (array - array.min()) / spread if spread > 0 else np.ones_like(array)


def hybrid_search(
    table: Any,
    text: str,
    query_vector: np.ndarray,
    k: int = 5,
    where: str | None = None,
    candidates: int = DEFAULT_CANDIDATES,
    vector_weight: float = VECTOR_WEIGHT,
) -> list[SearchHit]:
    """Both first stages' candidates, scored by a weighted sum of normalised cosine and BM25."""
    depth = max(candidates, k)
    text_rows = _first_stages.submit(_text_rows, table, text, depth, where, ["vector"])
    pool: dict[str, dict[str, Any]] = {}
    for row in [*_vector_rows(table, query_vector, depth, where, ["vector"]), *text_rows.result()]:
        pool.setdefault(row["chunk_id"], row)
    rows = list(pool.values())
    if not rows:
        return []
    vectors = np.asarray([row["vector"] for row in rows], dtype=np.float32)
    query = np.asarray(query_vector, dtype=np.float32)
    cosine = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query) + 1e-12)
    lexical = np.asarray(_lexical_scores(table, text, rows))
    lexical = lexical / lexical.max() if lexical.max() > 0 else lexical
    fused = vector_weight * _normalised(cosine) + (1 - vector_weight) * lexical
    return _ranked(list(zip(rows, fused.tolist())), k)


def rrf_search(table: Any, text: str, query_vector: np.ndarray, k: int = 5,
               where: str | None = None) -> list[SearchHit]:
    """Vector and full-text rankings fused by reciprocal rank; score is the RRF score."""
    depth = max(DEFAULT_CANDIDATES, k)
    return reciprocal_rank_fusion(
        [vector_search(table, query_vector, depth, where),
         text_search(table, text, depth, where, depth)],
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
    query_vector = embed_questions(embedder, [question])[0]
    if mode is SearchMode.VECTOR:
        return vector_search(table, query_vector, k, where)
    if mode is SearchMode.RRF:
        return rrf_search(table, question, query_vector, k, where)
    return hybrid_search(table, question, query_vector, k, where)
