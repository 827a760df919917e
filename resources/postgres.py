"""PostgreSQL access for the Customer 360, KPI, dead-letter and offset tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from dagster import ConfigurableResource
from psycopg.types.json import set_json_dumps, set_json_loads
from pydantic import Field

from rag_assets.platform import json_codec


class PostgresResource(ConfigurableResource):
    """One database; `db_schema` keeps each deployment's (or each test's) tables apart."""

    host: str
    port: int = 5432
    user: str
    password: str = Field(default="", repr=False)
    database: str
    db_schema: str = Field(default="rag", description="Schema holding the project's tables.")
    sslmode: str = "prefer"

    def _connect(self, settings: str = "") -> psycopg.Connection:
        conn = psycopg.connect(
            host=self.host, port=self.port, user=self.user, password=self.password,
            dbname=self.database, sslmode=self.sslmode, connect_timeout=10,
            options=f"-c search_path={self.db_schema},public{settings}",
        )
        # json and jsonb values in and out through orjson where it agrees with `json`.
        set_json_dumps(json_codec.dumps, conn)
        set_json_loads(json_codec.loads, conn)
        return conn

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """One connection for many short transactions (see `in_transaction`), e.g. a streaming
        sensor's tick: a new connection costs more than the queries of a micro-batch."""
        conn = self._connect()
        conn.autocommit = True
        try:
            yield conn
        finally:
            conn.close()

    def open_connection(self, read_only: bool = False,
                        statement_timeout_ms: int | None = None) -> psycopg.Connection:
        """An autocommit connection the caller keeps and closes (a server's per-thread one):
        read-only by default for its transactions if asked, each statement cancelled after
        `statement_timeout_ms` if given."""
        settings = " -c default_transaction_read_only=on" if read_only else ""
        if statement_timeout_ms is not None:
            settings += f" -c statement_timeout={int(statement_timeout_ms)}"
        conn = self._connect(settings)
        conn.autocommit = True
        return conn

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor]:
        """A cursor inside one transaction: committed on success, rolled back on error."""
        with self._connect() as conn, conn.cursor() as cur:
            yield cur


@contextmanager
def in_transaction(conn: psycopg.Connection) -> Iterator[psycopg.Cursor]:
    """A cursor inside one transaction on a `PostgresResource.connection()`."""
    with conn.transaction(), conn.cursor() as cur:
        yield cur
