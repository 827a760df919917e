"""Creating the project's PostgreSQL schema: each domain ships an idempotent `schema.sql`."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources as package_files

from psycopg import sql

SCHEMA_FILES = (
    ("rag_assets.platform", "schema.sql"),
)


def ensure_schema(cur, schema_name: str, extra_files: tuple = ()) -> None:
    """Create `schema_name` and every table in it; safe to call on every run.

    A file is executed only when its text differs from the one last applied to this schema
    (`schema_files` keeps a digest per file). Re-running unchanged DDL is not free: `CREATE
    INDEX IF NOT EXISTS` takes a SHARE lock on its table even when the index exists, so runs
    executing at the same time deadlocked — one holding those locks, another writing rows.
    """
    # Serialises concurrent first runs, which would otherwise race on CREATE TABLE.
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"schema:{schema_name}",))
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema_name)))
    cur.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema_name)))
    cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {}.schema_files"
                        " (name text PRIMARY KEY, digest text NOT NULL)")
                .format(sql.Identifier(schema_name)))
    for package, name in (*SCHEMA_FILES, *extra_files):
        _apply_if_changed(cur, schema_name, package, name)


@lru_cache(maxsize=None)
def _schema_text(package: str, name: str) -> str:
    return package_files.files(package).joinpath(name).read_text()


def _apply_if_changed(cur, schema_name: str, package: str, name: str) -> None:
    file_name = f"{package}/{name}"
    digest = hashlib.sha256(_schema_text(package, name).encode()).hexdigest()
    table = sql.Identifier(schema_name, "schema_files")
    cur.execute(sql.SQL("SELECT digest FROM {} WHERE name = %s").format(table), (file_name,))
    row = cur.fetchone()
    if row is not None and row[0] == digest:
        return
    cur.execute(_schema_text(package, name))
    cur.execute(sql.SQL("INSERT INTO {} (name, digest) VALUES (%s, %s)"
                        " ON CONFLICT (name) DO UPDATE SET digest = EXCLUDED.digest").format(table),
                (file_name, digest))


def drain(postgres, step) -> None:
    """Run `step(cur)` in its own transaction on `postgres` until it reports no more work."""
    while True:
        with postgres.transaction() as cur:
            if step(cur) == 0:
                return
