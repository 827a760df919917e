"""Connecting to the product's PostgreSQL database, without Dagster.

`PgConnector` holds one database's settings and opens connections with the project's session
settings (the schema on the search path, JSON through `json_codec`). The Dagster resource
(`resources.postgres.PostgresResource`) is configured with the same fields and connects through
it; code that must start fast (the look-up commands) builds one from the environment directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import set_json_dumps, set_json_loads

from rag_assets.platform import json_codec

# The libpq variables a deployment sets, by connector field.
PG_ENV_VARS = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD",
               "database": "PGDATABASE"}
SCHEMA_ENV_VAR = "RAG_PG_SCHEMA"
DEFAULT_SCHEMA = "rag"


@dataclass(frozen=True)
class PgConnector:
    host: str
    port: int
    user: str
    database: str
    password: str = field(default="", repr=False)
    db_schema: str = DEFAULT_SCHEMA
    sslmode: str = "prefer"

    def connect(self, settings: str = "") -> psycopg.Connection:
        """A new connection with the schema on its search path and `settings` (`-c name=value`
        options) for its session."""
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
        conn = self.connect()
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
        conn = self.connect(settings)
        conn.autocommit = True
        return conn

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor]:
        """A cursor inside one transaction: committed on success, rolled back on error."""
        with self.connect() as conn, conn.cursor() as cur:
            yield cur


@contextmanager
def in_transaction(conn: psycopg.Connection) -> Iterator[psycopg.Cursor]:
    """A cursor inside one transaction on an autocommit connection (`PgConnector.connection()`)."""
    with conn.transaction(), conn.cursor() as cur:
        yield cur


def connector_from_env(user_env: str = "PGUSER", password_env: str = "PGPASSWORD",
                       environ: Mapping[str, str] = os.environ) -> PgConnector:
    """The database of the libpq variables, as `user_env`; a missing variable is named."""
    names = {**PG_ENV_VARS, "user": user_env, "password": password_env}
    missing = [name for key, name in names.items() if key != "password" and not environ.get(name)]
    if missing:
        raise KeyError(f"PostgreSQL settings missing from the environment: {', '.join(missing)}")
    return PgConnector(
        host=environ[names["host"]], port=int(environ[names["port"]]), user=environ[names["user"]],
        password=environ.get(names["password"], ""), database=environ[names["database"]],
        db_schema=environ.get(SCHEMA_ENV_VAR) or DEFAULT_SCHEMA,
    )
