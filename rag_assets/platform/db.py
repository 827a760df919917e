"""Creating the project's PostgreSQL schema: each domain ships an idempotent `schema.sql`."""

from __future__ import annotations

from importlib import resources as package_files

from psycopg import sql

from resources.postgres import in_transaction

SCHEMA_FILES = (
    ("rag_assets.platform", "schema.sql"),
)


def ensure_schema(cur, schema_name: str, extra_files: tuple = ()) -> None:
    """Create `schema_name` and every table in it; safe to call on every run."""
    # Serialises concurrent first runs, which would otherwise race on CREATE TABLE.
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"schema:{schema_name}",))
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema_name)))
    cur.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(schema_name)))
    for package, name in (*SCHEMA_FILES, *extra_files):
        cur.execute(package_files.files(package).joinpath(name).read_text())


def drain(postgres, step) -> None:
    """Run `step(cur)` in its own transaction on `postgres` until it reports no more work; one
    connection serves them all (opening one costs ~15-20 ms locally)."""
    with postgres.connection() as conn:
        while True:
            with in_transaction(conn) as cur:
                if step(cur) == 0:
                    return
