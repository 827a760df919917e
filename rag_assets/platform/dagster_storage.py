"""Dagster's PostgreSQL storage with its connections pooled.

dagster-postgres gives each storage (runs, event log, schedules) an engine without a pool, so
that instances made and dropped by the hundred hold no connections: every read of a sensor's
state, every tick written and every runless materialisation reported opens a PostgreSQL
connection, with its SCRAM login. In this deployment's daemon that was 70 % of its CPU under a
steady change stream (docs/benchmarks.md, "Session 12"). The processes here keep one instance
each (the daemon, the webserver, the code location's sensors through `sensors/deployment.py`, a
run's worker), so a small pool per storage is what they need. `dagster.yaml` names this class.
"""

from __future__ import annotations

from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)

# Connections a storage keeps open; more at once are opened and closed as before.
POOL_SIZE = 2
MAX_OVERFLOW = 10
# A connection is replaced after this long, and checked before use (a restarted server).
POOL_RECYCLE_S = 1800


class PooledPostgresStorage(DagsterPostgresStorage):
    """`DagsterPostgresStorage` (the `storage: postgres:` of dagster.yaml) with pooled engines."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True,
                 inst_data=None, token_provider=None) -> None:
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage._engine = create_pg_engine(
                storage.postgres_url, token_provider, isolation_level="AUTOCOMMIT",
                pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_recycle=POOL_RECYCLE_S,
                pool_pre_ping=True)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledPostgresStorage:
        return cls(pg_url_from_config(config_value),
                   config_value.get("should_autocreate_tables", True), inst_data,
                   get_token_provider_from_config(config_value))
