"""PostgreSQL access for the Customer 360, KPI, dead-letter and offset tables, as a resource."""

from __future__ import annotations

from contextlib import AbstractContextManager

import psycopg
from dagster import ConfigurableResource
from pydantic import Field

from rag_assets.platform.pg_connection import DEFAULT_SCHEMA, PgConnector


class PostgresResource(ConfigurableResource):
    """One database; `db_schema` keeps each deployment's (or each test's) tables apart.
    Connections are opened by `PgConnector` (rag_assets/platform/pg_connection.py)."""

    host: str
    port: int = 5432
    user: str
    password: str = Field(default="", repr=False)
    database: str
    db_schema: str = Field(default=DEFAULT_SCHEMA, description="Schema holding the project's tables.")
    sslmode: str = "prefer"

    @property
    def connector(self) -> PgConnector:
        return PgConnector(host=self.host, port=self.port, user=self.user, password=self.password,
                           database=self.database, db_schema=self.db_schema, sslmode=self.sslmode)

    def connection(self) -> AbstractContextManager[psycopg.Connection]:
        return self.connector.connection()

    def open_connection(self, read_only: bool = False,
                        statement_timeout_ms: int | None = None) -> psycopg.Connection:
        return self.connector.open_connection(read_only, statement_timeout_ms)

    def transaction(self) -> AbstractContextManager[psycopg.Cursor]:
        return self.connector.transaction()
