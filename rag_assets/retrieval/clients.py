"""The retrieval endpoint's clients and audit trail in PostgreSQL (`schema.sql` beside this file).

`add_client` makes a token and keeps only its digest; `ClientDirectory` answers which client a
presented token belongs to, caching answers for a few seconds (a revocation takes effect within
`cache_s`); `record_lookup` writes the audit row of a context call that named a customer.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from rag_assets.platform.db import ensure_schema
from rag_assets.platform.db_roles import (
    RETRIEVAL_ROLE_ENV,
    may_create_schemas,
    retrieval_grants_lacking,
)
from rag_assets.retrieval.access import new_token, token_digest

RETRIEVAL_SCHEMA = (("rag_assets.retrieval", "schema.sql"),)
ENVIRONMENT_CLIENT = "environment"  # the client RAG_RETRIEVAL_TOKEN stands for
CLIENT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


class ClientError(ValueError):
    """A client name that is invalid, taken or unknown."""


def ensure_retrieval_schema(cur, db_schema: str) -> None:
    ensure_schema(cur, db_schema, RETRIEVAL_SCHEMA)


class GrantsLacking(RuntimeError):
    """The server's role lacks grants it needs (the message names them and what to do)."""


def serving_clients(cur, db_schema: str) -> int:
    """The active clients, for a server starting: the retrieval tables are created first when
    the server's role may create them; the read-only retrieval role finds them made, and itself
    granted, by the pipelines' role (UndefinedTable, `GrantsLacking` when it is not)."""
    if may_create_schemas(cur):
        ensure_retrieval_schema(cur, db_schema)
    elif lacking := retrieval_grants_lacking(cur, db_schema):
        named = ", ".join(f"{privilege} on {name or db_schema}" for privilege, _, name in lacking)
        raise GrantsLacking(f"this role lacks {named}: the pipelines grant them when "
                            f"{RETRIEVAL_ROLE_ENV} names it in their environment too")
    return active_clients(cur)


def add_client(cur, client_id: str) -> str:
    """A new client; returns its token (shown once: only its digest is stored)."""
    if not CLIENT_NAME.fullmatch(client_id) or client_id == ENVIRONMENT_CLIENT:
        raise ClientError(f"a client name is 1-63 of a-z 0-9 . _ - starting with a letter or "
                          f"digit, and not {ENVIRONMENT_CLIENT!r}")
    token = new_token()
    cur.execute("INSERT INTO retrieval_clients (client_id, token_sha256) VALUES (%s, %s)"
                " ON CONFLICT (client_id) DO NOTHING", (client_id, token_digest(token)))
    if cur.rowcount == 0:
        raise ClientError(f"client {client_id!r} exists: revoke it first or pick another name")
    return token


def revoke_client(cur, client_id: str) -> None:
    cur.execute("UPDATE retrieval_clients SET revoked_at = now()"
                " WHERE client_id = %s AND revoked_at IS NULL", (client_id,))
    if cur.rowcount == 0:
        raise ClientError(f"no active client {client_id!r}")


def list_clients(cur) -> list[tuple[str, str, str | None]]:
    """(client, created at, revoked at) — never a token or digest."""
    cur.execute("SELECT client_id, created_at::text, revoked_at::text FROM retrieval_clients"
                " ORDER BY client_id")
    return [tuple(row) for row in cur.fetchall()]


def active_clients(cur) -> int:
    cur.execute("SELECT count(*) FROM retrieval_clients WHERE revoked_at IS NULL")
    return cur.fetchone()[0]


def record_lookup(cur, client_id: str, customer_id: str | None) -> None:
    cur.execute("INSERT INTO retrieval_audit (client_id, customer_id) VALUES (%s, %s)",
                (client_id, customer_id))


class ClientDirectory:
    """Which client a token belongs to: the clients table, plus `environment_token` (from
    RAG_RETRIEVAL_TOKEN) as the client `environment`. `lookup(digest)` queries the table."""

    def __init__(self, lookup: Callable[[str], str | None], environment_token: str | None = None,
                 cache_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lookup = lookup
        self._environment = token_digest(environment_token) if environment_token else None
        self.cache_s, self.clock = cache_s, clock
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def client_of(self, token: str) -> str | None:
        digest = token_digest(token)
        if digest == self._environment:
            return ENVIRONMENT_CLIENT
        now = self.clock()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and now - cached[1] < self.cache_s:
            return cached[0]
        client = self._lookup(digest)
        with self._lock:
            if len(self._cache) > 10_000:  # wrong tokens must not grow it without bound
                self._cache.clear()
            self._cache[digest] = (client, now)
        return client


def lookup_in(cur, digest: str) -> str | None:
    cur.execute("SELECT client_id FROM retrieval_clients WHERE token_sha256 = %s"
                " AND revoked_at IS NULL", (digest,))
    row = cur.fetchone()
    return row[0] if row else None


class ClientStore:
    """The clients table and the audit log for a server: one autocommit connection per thread."""

    def __init__(self, postgres) -> None:
        self.postgres = postgres
        self._local = threading.local()

    def _run(self, work):
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = self.postgres.open_connection()
        with conn.cursor() as cur:
            return work(cur)

    def client_of_digest(self, digest: str) -> str | None:
        return self._run(lambda cur: lookup_in(cur, digest))

    def audit(self, client_id: str, customer_id: str | None) -> None:
        self._run(lambda cur: record_lookup(cur, client_id, customer_id))
