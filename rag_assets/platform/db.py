"""Creating the project's PostgreSQL schema: each domain ships an idempotent `schema.sql`.

A file is executed only when its content changed since it was last applied in this schema
(`schema_files` keeps a hash per file). Re-running DDL is not free: `CREATE INDEX IF NOT
EXISTS` takes a share lock on its table before it sees the index exists, so a run calling
`ensure_schema` while a streaming worker writes the same tables waited on it, blocked it in turn,
and once deadlocked (found by bench/freshness.py).
"""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Callable, Iterable, Sequence
from importlib import resources as package_files
from typing import Any

from psycopg import sql

from rag_assets.platform.db_roles import grant_retrieval_access, retrieval_grants_missing
from rag_assets.platform.pg_connection import in_transaction

SCHEMA_FILES = (
    ("rag_assets.platform", "schema.sql"),
)


def _files(extra_files: tuple) -> dict[str, str]:
    return {f"{package}/{name}": package_files.files(package).joinpath(name).read_text()
            for package, name in (*SCHEMA_FILES, *extra_files)}


def ensure_schema(cur, schema_name: str, extra_files: tuple = ()) -> None:
    """Create `schema_name` and every table in it; safe and cheap to call on every run. The
    retrieval role, when one is configured, is granted what it lacks on what exists now
    (`db_roles.py`), so a table created by a later call is granted by that call.

    When every file is applied already and no grant is missing, nothing is locked: callers call
    this first thing in transactions that may last minutes (a fine-tuning export), and a lock
    held to their commit stopped every other run and sensor tick of the schema behind them
    (bench/freshness.py, 2026-12-07). Only a call with DDL to run takes the schema's lock."""
    cur.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema_name)))
    texts = _files(extra_files)
    files = {name: hashlib.sha256(text.encode()).hexdigest() for name, text in texts.items()}
    if not _pending_files(cur, schema_name, files) and not retrieval_grants_missing(cur, schema_name):
        return
    # Serialises concurrent first runs, which would otherwise race on CREATE TABLE.
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"schema:{schema_name}",))
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema_name)))
    cur.execute("CREATE TABLE IF NOT EXISTS schema_files (name text PRIMARY KEY,"
                " sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
    for name in _pending_files(cur, schema_name, files):
        cur.execute(sql.SQL(texts[name]))  # the package's own DDL, never run-time input
        cur.execute("INSERT INTO schema_files (name, sha256) VALUES (%s, %s) ON CONFLICT (name)"
                    " DO UPDATE SET sha256 = EXCLUDED.sha256, applied_at = now()",
                    (name, files[name]))
    grant_retrieval_access(cur, schema_name)


def _pending_files(cur, schema_name: str, digests: dict[str, str]) -> list[str]:
    """The files (in the order given) whose content is not the one applied in the schema."""
    cur.execute("SELECT to_regclass(format('%%I.schema_files', %s::text))", (schema_name,))
    if cur.fetchone()[0] is None:
        return list(digests)
    cur.execute(sql.SQL("SELECT name, sha256 FROM {}.schema_files WHERE name = ANY(%s)").format(
        sql.Identifier(schema_name)), (sorted(digests),))
    applied = dict(cur.fetchall())
    return [name for name, digest in digests.items() if applied.get(name) != digest]


def drain(postgres, step) -> None:
    """Run `step(cur)` in its own transaction on `postgres` until it reports no more work; one
    connection serves them all (opening one costs ~15-20 ms locally)."""
    with postgres.connection() as conn:
        while True:
            with in_transaction(conn) as cur:
                if step(cur) == 0:
                    return


def drain_in_processes(postgres, step: Callable[[Any, Any], int], new_stats: Callable[[], Any],
                       processes: int) -> list:
    """`drain` by `processes` processes at once: this one and `processes - 1` spawned helpers,
    each with its own connection and stats (returned, this process's first). `step(cur, stats)`
    must claim its work with `FOR UPDATE SKIP LOCKED`, so that concurrent drains take disjoint
    work; `step` and `new_stats` must be importable module-level names (they are sent to the
    helpers by reference). A helper's error is raised here once this process's drain is done."""
    if processes <= 1:
        return [_drain_counting(postgres, step, new_stats)]
    connector = postgres.connector  # plain settings a spawned helper can unpickle
    pool = multiprocessing.get_context("spawn").Pool(processes - 1)
    try:
        helpers = [pool.apply_async(_drain_counting, (connector, step, new_stats))
                   for _ in range(processes - 1)]
        own = _drain_counting(postgres, step, new_stats)
        return [own] + [helper.get() for helper in helpers]
    finally:
        # Not `with Pool`: its exit terminates idle helpers with SIGTERM while holding the task
        # queue's lock they wait on. A process started by one that ignores SIGTERM ignores it
        # too, and then the join never returned (a CI run hung so). close() lets each helper
        # take its stop sentinel and exit.
        pool.close()
        pool.join()


def _drain_counting(postgres, step, new_stats):
    stats = new_stats()
    drain(postgres, lambda cur: step(cur, stats))
    return stats


def fill_scratch_table(cur, name: str, columns: str, rows: Iterable[Sequence]) -> None:
    """COPY `rows` into the temporary table `name` (`columns`: its column definitions, a
    constant, in row order) for the statements that follow to read. For thousands of rows COPY
    is several times cheaper than array parameters (docs/benchmarks.md). The table lives as long
    as the connection and is emptied at every commit."""
    table = sql.Identifier(name)
    cur.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS")
                .format(table, sql.SQL(columns)))
    cur.execute(sql.SQL("DELETE FROM {}").format(table))  # empty unless filled twice in a transaction
    with cur.copy(sql.SQL("COPY {} FROM STDIN").format(table)) as copy:
        for row in rows:
            copy.write_row(row)
