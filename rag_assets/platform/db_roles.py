"""The PostgreSQL role the retrieval service reads with, and the privileges it is granted.

The retrieval endpoint and the read-only CLI look-ups need far less than the pipelines: they
read profiles, the identity look-up table, the document registry and the endpoint's clients,
and append audit rows. When `RAG_RETRIEVAL_PGUSER` names a role, `ensure_schema` grants it
exactly `RETRIEVAL_GRANTS` on the product schema (tables that do not exist yet are granted by
the call that creates them), and the retrieval code connects as it. The role itself, its
password and CONNECT on the database are an administrator's (`infra/postgres.py` locally;
docs/operations.md, "Least privilege", in production).

Only privileges that are missing are granted: a GRANT rewrites the table's catalogue row even
when nothing changes, and `ensure_schema` runs on every tick.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from psycopg import sql

from rag_assets.platform.pg_connection import PG_ENV_VARS

RETRIEVAL_ROLE_ENV = "RAG_RETRIEVAL_PGUSER"
RETRIEVAL_PASSWORD_ENV = "RAG_RETRIEVAL_PGPASSWORD"


@dataclass(frozen=True)
class RoleGrants:
    """Privileges on tables of the product schema: `select` read, `append` only inserted into
    (with USAGE on the sequences their serial columns own)."""

    select: tuple[str, ...]
    append: tuple[str, ...]


RETRIEVAL_GRANTS = RoleGrants(
    select=(
        "customer_profiles",      # rag_assets/customers/lookup.py: ids, profiles
        "identity_lookup",        # lookup.py: email, phone and loyalty number → records
        "customer_assignments",   # lookup.py: records → customer
        "kb_documents",           # rag_assets/knowledge/registry.py indexed_times
        "retrieval_clients",      # rag_assets/retrieval/clients.py lookup_in, active_clients
    ),
    append=("retrieval_audit",),  # clients.py record_lookup
)


class RoleMissing(RuntimeError):
    """The configured role does not exist (the message says what to do)."""


def may_create_schemas(cur) -> bool:
    """Whether the connected role may run `ensure_schema` (it needs CREATE on the database): the
    pipelines' role may, the retrieval role may not."""
    cur.execute("SELECT has_database_privilege(current_database(), 'CREATE')")
    return cur.fetchone()[0]


def retrieval_role() -> str | None:
    """The retrieval service's role, from `RAG_RETRIEVAL_PGUSER`; None when it is not set."""
    return os.environ.get(RETRIEVAL_ROLE_ENV) or None


def reader_login_env() -> tuple[str, str]:
    """The variables of the login readers use: the retrieval role's when one is configured,
    else the pipelines' (PGUSER, PGPASSWORD)."""
    if retrieval_role() is None:
        return PG_ENV_VARS["user"], PG_ENV_VARS["password"]
    return RETRIEVAL_ROLE_ENV, RETRIEVAL_PASSWORD_ENV


def missing_privileges(cur, schema_name: str, role: str,
                       grants: RoleGrants) -> list[tuple[str, str, str | None]]:
    """(privilege, object kind, table or sequence name) of every grant `role` lacks on the
    objects of `schema_name` that exist."""
    cur.execute("""
        SELECT 'USAGE', 'SCHEMA', NULL FROM pg_namespace
        WHERE nspname = %(schema)s AND NOT has_schema_privilege(%(role)s, oid, 'USAGE')
        UNION ALL
        SELECT w.privilege, 'TABLE', c.relname
        FROM unnest(%(tables)s::text[], %(privileges)s::text[]) AS w(name, privilege)
        JOIN pg_class c ON c.relname = w.name AND c.relkind IN ('r', 'p')
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = %(schema)s
        WHERE NOT has_table_privilege(%(role)s, c.oid, w.privilege)
        UNION ALL
        SELECT 'USAGE', 'SEQUENCE', s.relname
        FROM pg_class t
        JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = %(schema)s
        JOIN pg_depend d ON d.refobjid = t.oid AND d.classid = 'pg_class'::regclass
            AND d.deptype IN ('a', 'i')
        JOIN pg_class s ON s.oid = d.objid
        WHERE t.relname = ANY(%(append)s::text[])
          -- CASE: the planner may test the privilege before the join's condition on relkind
          AND CASE WHEN s.relkind = 'S'
                   THEN NOT has_sequence_privilege(%(role)s, s.oid, 'USAGE') END
        """, {
        "role": role, "schema": schema_name, "tables": [*grants.select, *grants.append],
        "privileges": ["SELECT"] * len(grants.select) + ["INSERT"] * len(grants.append),
        "append": list(grants.append)})
    return [tuple(row) for row in cur.fetchall()]


def _grant(privilege: str, kind: str, name: str | None, schema_name: str,
           role: str) -> sql.Composed:
    target = (sql.Identifier(schema_name) if kind == "SCHEMA"
              else sql.Identifier(schema_name, name))
    return sql.SQL("GRANT {} ON {} {} TO {}").format(
        sql.SQL(privilege), sql.SQL(kind), target, sql.Identifier(role))


def grant_missing(cur, schema_name: str, role: str, grants: RoleGrants) -> int:
    """Grant `role` what it lacks of `grants` on `schema_name`; the number of grants made.
    `RoleMissing` when the role does not exist."""
    if not _role_exists(cur, role):
        raise RoleMissing(f"{RETRIEVAL_ROLE_ENV} names the role {role!r}, which does not exist "
                          "in this PostgreSQL server: create it (docs/operations.md, \"Least "
                          f"privilege\") or unset {RETRIEVAL_ROLE_ENV}")
    missing = missing_privileges(cur, schema_name, role, grants)
    for privilege, kind, name in missing:
        cur.execute(_grant(privilege, kind, name, schema_name, role))
    return len(missing)


def retrieval_grants_lacking(cur, schema_name: str) -> list[tuple[str, str, str | None]]:
    """What the connected role lacks of `RETRIEVAL_GRANTS` on `schema_name` (for a server that
    reads as the retrieval role to refuse to start rather than fail every call)."""
    cur.execute("SELECT current_user")
    return missing_privileges(cur, schema_name, cur.fetchone()[0], RETRIEVAL_GRANTS)


def retrieval_grants_missing(cur, schema_name: str) -> bool:
    """Whether the configured retrieval role, if one is configured, lacks a grant (or does not
    exist: `grant_retrieval_access` says so)."""
    role = retrieval_role()
    if role is None:
        return False
    return (not _role_exists(cur, role)
            or bool(missing_privileges(cur, schema_name, role, RETRIEVAL_GRANTS)))


def _role_exists(cur, role: str) -> bool:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    return cur.fetchone() is not None


def grant_retrieval_access(cur, schema_name: str) -> int:
    """`RETRIEVAL_GRANTS` to the configured retrieval role, if one is configured."""
    role = retrieval_role()
    return 0 if role is None else grant_missing(cur, schema_name, role, RETRIEVAL_GRANTS)
