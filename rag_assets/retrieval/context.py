"""The context bundle an LLM prompt needs: a customer's unified profile and the top-k knowledge
chunks for a question, every item with its provenance and age.

`RetrievalService.context(customer_ref, question, k)` is the one call behind Python, the CLI and
HTTP. Input is validated here (`InvalidRequest`); the reference is resolved by the customers
pipeline's parameterised lookup, and a reference that fits two customers resolves to none, so a
call for one customer never returns another customer's data. Knowledge chunks are shared policy
text; any document-key filter is escaped. Questions and profiles are never logged.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.errors import QueryCanceled, UndefinedTable

from rag_assets.customers.lookup import MAX_REFERENCE_CHARS, InvalidReference, find_profile
from rag_assets.knowledge import registry
from rag_assets.knowledge.chunk_store import DEFAULT_TABLE_NAME
from rag_assets.knowledge.embedding import Embedder
from rag_assets.knowledge.indexing import doc_keys_filter
from rag_assets.knowledge.search import SearchHit, SearchMode, search_chunks
from rag_assets.retrieval.personalise import PREFERENCE_CANDIDATES, prefer, profile_preferences

MAX_QUESTION_CHARS = 2_000
MAX_K = 50
DEFAULT_K = 5
MAX_DOC_KEY_FILTERS = 20
MAX_DOC_KEY_CHARS = 1_024
DEFAULT_STATEMENT_TIMEOUT_MS = 2_000
STATEMENT_TIMEOUT_ENV = "RAG_RETRIEVAL_STATEMENT_TIMEOUT_MS"


class InvalidRequest(ValueError):
    """The request is malformed; the message says which field and why (safe to show)."""


@dataclass(frozen=True)
class ContextRequest:
    customer_ref: str
    question: str
    k: int = DEFAULT_K
    mode: SearchMode = SearchMode.HYBRID
    doc_keys: tuple[str, ...] = ()
    answer: bool = False
    personalise: bool = True  # prefer the passages that apply to the customer's profile


def _printable(text: str, allow_newlines: bool) -> bool:
    allowed = "\n\r\t" if allow_newlines else ""
    return all(char.isprintable() or char in allowed for char in text)


def validate_request(customer_ref: Any, question: Any, k: Any = DEFAULT_K,
                     mode: Any = SearchMode.HYBRID.value, doc_keys: Any = None,
                     answer: Any = False, personalise: Any = True) -> ContextRequest:
    if not isinstance(customer_ref, str) or not customer_ref.strip():
        raise InvalidRequest("customer: a non-empty string is required")
    customer_ref = customer_ref.strip()
    if len(customer_ref) > MAX_REFERENCE_CHARS or not _printable(customer_ref, False):
        raise InvalidRequest(f"customer: 1 to {MAX_REFERENCE_CHARS} printable characters")
    if not isinstance(question, str) or not question.strip():
        raise InvalidRequest("question: a non-empty string is required")
    question = question.strip()
    if len(question) > MAX_QUESTION_CHARS or not _printable(question, True):
        raise InvalidRequest(f"question: 1 to {MAX_QUESTION_CHARS} printable characters")
    if isinstance(k, str) and k.strip().isdecimal() and len(k) < 10:
        k = int(k)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidRequest(f"k: an integer from 1 to {MAX_K}")
    try:
        mode = SearchMode(mode)
    except ValueError:
        raise InvalidRequest(
            f"mode: one of {', '.join(m.value for m in SearchMode)}") from None
    if doc_keys is None:
        doc_keys = ()
    if isinstance(doc_keys, str) or not isinstance(doc_keys, (list, tuple)):
        raise InvalidRequest("doc_keys: a list of document keys")
    if len(doc_keys) > MAX_DOC_KEY_FILTERS or not all(
            isinstance(key, str) and 0 < len(key) <= MAX_DOC_KEY_CHARS for key in doc_keys):
        raise InvalidRequest(
            f"doc_keys: at most {MAX_DOC_KEY_FILTERS} keys of 1 to {MAX_DOC_KEY_CHARS} characters")
    if not isinstance(answer, bool):
        raise InvalidRequest("answer: true or false")
    if not isinstance(personalise, bool):
        raise InvalidRequest("personalise: true or false")
    return ContextRequest(customer_ref, question, k, mode, tuple(doc_keys), answer, personalise)


# --------------------------------------------------------------------------------------------
# Building the bundle (pure)
# --------------------------------------------------------------------------------------------


def _age_seconds(now: datetime, then: datetime | str | None) -> float | None:
    if then is None:
        return None
    if isinstance(then, str):
        then = datetime.fromisoformat(then)
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return round(max(0.0, (now - then).total_seconds()), 3)


def _cdc_positions(value: Any, found: set[str]) -> set[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "cdc_position" and isinstance(item, str):
                found.add(item)
            else:
                _cdc_positions(item, found)
    elif isinstance(value, list):
        for item in value:
            _cdc_positions(item, found)
    return found


def customer_item(profile: Mapping[str, Any] | None, now: datetime) -> dict[str, Any] | None:
    if profile is None:
        return None
    body = {k: v for k, v in profile.items() if k not in ("profile_version", "updated_at")}
    return {
        "customer_id": body.get("customer_id"),
        "profile": body,
        "provenance": {
            "profile_version": profile.get("profile_version"),
            "cdc_positions": sorted(_cdc_positions(body, set())),
            "note": "each golden field names its source record and CDC position",
        },
        "updated_at": profile.get("updated_at"),
        "age_seconds": _age_seconds(now, profile.get("updated_at")),
    }


def chunk_item(rank: int, hit: SearchHit, indexed_at: datetime | None,
               now: datetime) -> dict[str, Any]:
    # Age of the text as served: since its document version was indexed (the vector of an
    # unchanged chunk may be older), falling back to when the vector was computed.
    as_of = indexed_at or hit.embedded_at
    return {
        "rank": rank,
        "score": round(float(hit.score), 6) if math.isfinite(hit.score) else None,
        "heading": hit.heading,
        "text": hit.text,
        "provenance": {
            "doc_key": hit.doc_key,
            "doc_version": hit.doc_version,
            "chunk_no": hit.chunk_no,
            "chunk_id": hit.chunk_id,
            "run_id": hit.run_id,
            "embedding_model": hit.embedding_model,
        },
        "embedded_at": hit.embedded_at.isoformat(),
        "indexed_at": indexed_at.isoformat() if indexed_at else None,
        "age_seconds": _age_seconds(now, as_of),
    }


def build_bundle(request: ContextRequest, profile: Mapping[str, Any] | None,
                 hits: Sequence[SearchHit], indexed_at: Mapping[str, datetime],
                 now: datetime, timings_ms: Mapping[str, float] | None = None) -> dict[str, Any]:
    return {
        "question": request.question,
        "k": request.k,
        "mode": request.mode.value,
        "generated_at": now.isoformat(),
        "customer": customer_item(profile, now),
        "customer_found": profile is not None,
        "chunks": [chunk_item(rank, hit, indexed_at.get(hit.doc_key), now)
                   for rank, hit in enumerate(hits, start=1)],
        "timings_ms": dict(timings_ms or {}),
    }


# --------------------------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------------------------


@dataclass
class RetrievalService:
    """Holds the connections; `context` is safe to call from several threads."""

    postgres: Any  # resources.postgres.PostgresResource
    lancedb: Any  # resources.lancedb.LanceDBResource
    embedder: Embedder
    table_name: str = DEFAULT_TABLE_NAME
    answerer: Any = None  # rag_assets.retrieval.answer.BedrockAnswerer, optional
    # How stale the table handle may be: new document versions are seen within this interval.
    read_consistency: timedelta = timedelta(milliseconds=500)
    # A query running longer is cancelled (the HTTP endpoint then answers 503).
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS
    _table: Any = field(default=None, init=False, repr=False)
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)

    def table(self) -> Any | None:
        """The chunks table, or None while nothing was ever indexed. Never creates it."""
        if self._table is None:
            import lancedb

            db = lancedb.connect(self.lancedb.uri,
                                 storage_options=self.lancedb.storage_options() or None,
                                 read_consistency_interval=self.read_consistency)
            try:
                table = db.open_table(self.table_name)
            except ValueError:
                return None
            size = table.schema.field("vector").type.list_size
            if size != self.embedder.dimension:
                raise RuntimeError(f"table {self.table_name!r} holds {size}-d vectors but the "
                                   f"embedder {self.embedder.model_id} makes "
                                   f"{self.embedder.dimension}-d ones")
            self._table = table
        return self._table

    def _connection(self):
        """A connection per thread, kept open between calls (a new one costs more than a query)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self.postgres.open_connection(read_only=True,
                                                 statement_timeout_ms=self.statement_timeout_ms)
            self._local.conn = conn
        return conn

    def _with_cursor(self, work):
        for attempt in (1, 2):
            conn = self._connection()
            try:
                with conn.cursor() as cur:
                    return work(cur)
            except QueryCanceled:
                raise  # the statement timeout: the connection is fine, trying again would not be
            except psycopg.OperationalError:
                conn.close()  # a dropped connection: reconnect once
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _profile(cur, request: ContextRequest) -> Mapping[str, Any] | None:
        try:
            return find_profile(cur, request.customer_ref)
        except InvalidReference as error:
            raise InvalidRequest(f"customer: {error}") from None
        except UndefinedTable:  # no customer pipeline run in this schema yet
            return None

    @staticmethod
    def _indexed(cur, hits: Sequence[SearchHit]) -> Mapping[str, datetime]:
        try:
            return registry.indexed_times(cur, {h.doc_key: h.doc_version for h in hits})
        except UndefinedTable:
            return {}

    def search(self, request: ContextRequest, preferences: Sequence[str] = ()) -> list[SearchHit]:
        """The knowledge hits of a request, preferring passages that name `preferences`."""
        table = self.table()
        if table is None:
            return []
        where = doc_keys_filter(request.doc_keys) if request.doc_keys else None
        depth = max(request.k, PREFERENCE_CANDIDATES) if preferences else request.k
        hits = search_chunks(table, self.embedder, request.question, depth, request.mode, where)
        return prefer(hits, preferences, request.k)

    def context(self, customer_ref: Any, question: Any, k: Any = DEFAULT_K,
                mode: Any = SearchMode.HYBRID.value, doc_keys: Any = None,
                answer: Any = False, personalise: Any = True) -> dict[str, Any]:
        request = validate_request(customer_ref, question, k, mode, doc_keys, answer, personalise)
        return self.context_for(request)

    def context_for(self, request: ContextRequest) -> dict[str, Any]:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        profile = self._with_cursor(lambda cur: self._profile(cur, request))
        timings["profile"] = (time.perf_counter() - started) * 1000
        mark = time.perf_counter()
        hits = self.search(request, profile_preferences(profile) if request.personalise else [])
        timings["search"] = (time.perf_counter() - mark) * 1000
        mark = time.perf_counter()
        indexed = self._with_cursor(lambda cur: self._indexed(cur, hits))
        timings["registry"] = (time.perf_counter() - mark) * 1000
        bundle = build_bundle(request, profile, hits, indexed, datetime.now(UTC), timings)
        if request.answer:
            if self.answerer is None:
                bundle["answer"] = None
                bundle["answer_error"] = "answer generation is not configured (BEDROCK_LLM_MODEL_ID)"
            else:
                mark = time.perf_counter()
                bundle["answer"] = self.answerer.answer(bundle)
                timings["answer"] = (time.perf_counter() - mark) * 1000
        timings["total"] = (time.perf_counter() - started) * 1000
        bundle["timings_ms"] = {name: round(ms, 2) for name, ms in timings.items()}
        return bundle


def service_from_env(embedder: Embedder | None = None) -> RetrievalService:
    """PGHOST/PGPORT/PGDATABASE, RAG_RETRIEVAL_PGUSER/RAG_RETRIEVAL_PGPASSWORD (the read-only
    role; PGUSER/PGPASSWORD when unset), RAG_PG_SCHEMA (default "rag"), LANCEDB_URI,
    S3_ENDPOINT_URL and AWS credentials for an s3:// LanceDB, EMBEDDER_* as for the assets, and
    BEDROCK_LLM_MODEL_ID to enable answers, RAG_RETRIEVAL_STATEMENT_TIMEOUT_MS (default 2000)."""
    from rag_assets.platform.db_roles import RETRIEVAL_ROLE_ENV
    from rag_assets.retrieval.answer import answerer_from_env
    from resources.defaults import reader_postgres_from_environment, resource_from_environment

    missing = [name for name in ("PGHOST", "PGDATABASE", "LANCEDB_URI") if not os.environ.get(name)]
    if not (os.environ.get(RETRIEVAL_ROLE_ENV) or os.environ.get("PGUSER")):
        missing.append(f"{RETRIEVAL_ROLE_ENV} (or PGUSER)")
    if missing:
        raise RuntimeError(f"set {', '.join(missing)} (or run `eval \"$(rag-assets infra env)\"`)")
    postgres = reader_postgres_from_environment()
    lancedb = resource_from_environment("lancedb")
    if embedder is None:
        embedder = resource_from_environment("embedder").get_embedder()
    return RetrievalService(postgres, lancedb, embedder, answerer=answerer_from_env(),
                            statement_timeout_ms=int(os.environ.get(
                                STATEMENT_TIMEOUT_ENV, DEFAULT_STATEMENT_TIMEOUT_MS)))


