"""The local cluster's roles: the superuser kept for infra (`rag_admin`), the pipelines' writer
role (`rag`, no superuser, owner of the product and Dagster databases) and the retrieval role;
and the move of a cluster made by an earlier version, where `rag` was the bootstrap superuser.

That move cannot strip `rag` of SUPERUSER: the bootstrap superuser (oid 10) must keep it, and
REASSIGN OWNED refuses to take objects from it (it owns the system's own objects too). So a
temporary superuser renames the old `rag` to the admin (a session cannot rename its own role),
a plain `rag` is created, and every object of the product databases the admin owns is handed to
it, one ALTER ... OWNER TO at a time (`hand_over_objects`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class Login:
    user: str
    password: str = field(repr=False)


# An autocommit connection as `Login` to a database of the cluster.
Connect = Callable[[Login, str], psycopg.Connection]

WRITER_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
RETRIEVAL_ATTRIBUTES = "LOGIN NOINHERIT"
# The superuser that renames the bootstrap role while moving an old cluster; dropped after.
MIGRATION_ROLE = "rag_admin_migration"


def role_exists(cur, role: str) -> bool:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    return cur.fetchone() is not None


def _password_verifier(cur, login: Login) -> sql.Literal:
    """The password as a SCRAM verifier: the clear text never reaches the server or its log."""
    verifier = cur.connection.pgconn.encrypt_password(
        login.password.encode(), login.user.encode(), b"scram-sha-256").decode()
    return sql.Literal(verifier)


def create_login_role(cur, login: Login, attributes: str) -> bool:
    """`login`'s role with `attributes` (one of the constants above); False when it exists."""
    if role_exists(cur, login.user):
        return False
    cur.execute(sql.SQL("CREATE ROLE {} {} PASSWORD {}").format(
        sql.Identifier(login.user), sql.SQL(attributes), _password_verifier(cur, login)))
    return True


def drop_role_if_present(cur, role: str) -> None:
    if role_exists(cur, role):
        cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def ensure_database(cur, name: str, owner: str) -> None:
    """Database `name` owned by `owner`: created, or given to it."""
    cur.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,))
    row = cur.fetchone()
    if row is None:
        cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(owner)))
    elif row[0] != owner:
        cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
            sql.Identifier(name), sql.Identifier(owner)))


def drop_database(cur, name: str) -> None:
    cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# Every schema, table, view, sequence, routine and type of the connected database that `role`
# owns, outside the system schemas, as (ALTER keyword, quoted name). Indexes, triggers, TOAST
# tables and the sequences a column owns follow their table (ALTER SEQUENCE on those is
# refused); a table's row type and an array type follow theirs.
_OWNED_OBJECTS = """
    WITH user_schemas AS (
        SELECT oid, nspname, nspowner FROM pg_namespace
        WHERE nspname NOT IN ('pg_catalog', 'information_schema')
          AND nspname NOT LIKE 'pg\\_toast%%' AND nspname NOT LIKE 'pg\\_temp\\_%%')
    SELECT 'SCHEMA', format('%%I', nspname) FROM user_schemas
    WHERE nspowner = %(role)s::regrole
    UNION ALL
    SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                          WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                          ELSE 'TABLE' END,
           format('%%I.%%I', n.nspname, c.relname)
    FROM pg_class c JOIN user_schemas n ON n.oid = c.relnamespace
    WHERE c.relowner = %(role)s::regrole AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND NOT EXISTS (SELECT FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                        AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
    UNION ALL
    SELECT 'ROUTINE', format('%%I.%%I(%%s)', n.nspname, p.proname,
                             pg_get_function_identity_arguments(p.oid))
    FROM pg_proc p JOIN user_schemas n ON n.oid = p.pronamespace
    WHERE p.proowner = %(role)s::regrole
    UNION ALL
    SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
           format('%%I.%%I', n.nspname, t.typname)
    FROM pg_type t JOIN user_schemas n ON n.oid = t.typnamespace
    LEFT JOIN pg_class r ON r.oid = t.typrelid
    WHERE t.typowner = %(role)s::regrole
      AND (t.typtype IN ('d', 'e', 'r') OR t.typtype = 'c' AND r.relkind = 'c')
"""


def hand_over_objects(cur, from_role: str, to_role: str) -> int:
    """Give `to_role` every object of the connected database that `from_role` owns (see
    `_OWNED_OBJECTS`); the number of objects handed over."""
    cur.execute(_OWNED_OBJECTS, {"role": from_role})
    owned = cur.fetchall()
    for keyword, quoted_name in owned:
        # `quoted_name` is the server's own format('%I'): quoted identifiers, not input.
        cur.execute(sql.SQL("ALTER {} {} OWNER TO {}").format(
            sql.SQL(keyword), sql.SQL(quoted_name), sql.Identifier(to_role)))
    return len(owned)


def _is_bootstrap_superuser(cur, role: str) -> bool:
    cur.execute("SELECT oid = 10 AND rolsuper FROM pg_roles WHERE rolname = %s", (role,))
    row = cur.fetchone()
    return row is not None and row[0]


def _rename_bootstrap(cur, writer: str, admin: Login) -> None:
    cur.execute(sql.SQL("ALTER ROLE {} RENAME TO {}").format(
        sql.Identifier(writer), sql.Identifier(admin.user)))
    cur.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
        sql.Identifier(admin.user), _password_verifier(cur, admin)))
    # Sessions opened as the writer before the rename now run as the superuser: objects they
    # made from here on would be the admin's. They reconnect as the new writer role.
    cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE usename = %s AND pid <> pg_backend_pid()", (admin.user,))


def move_bootstrap_off_writer(connect: Connect, admin: Login, writer: Login) -> bool:
    """On a cluster made by an earlier version (no `admin` login; `writer` is the bootstrap
    superuser), rename the bootstrap superuser to `admin` with `admin`'s password; False when
    `admin` can log in already. The new writer role and the hand-over come after
    (`PostgresService`); a move cut short is finished by the next call."""
    try:
        connect(admin, "postgres").close()
        return False
    except psycopg.OperationalError as error:
        admin_refused = error
    try:
        conn = connect(writer, "postgres")
    except psycopg.OperationalError as writer_refused:
        raise RuntimeError(f"PostgreSQL refuses {admin.user!r} ({admin_refused}) and "
                           f"{writer.user!r} ({writer_refused})") from None
    with conn, conn.cursor() as cur:
        if not _is_bootstrap_superuser(cur, writer.user):
            raise RuntimeError(f"PostgreSQL refuses {admin.user!r}: {admin_refused}")
        create_login_role(cur, Login(MIGRATION_ROLE, admin.password), "LOGIN SUPERUSER")
    with connect(Login(MIGRATION_ROLE, admin.password), "postgres") as conn, \
            conn.cursor() as cur:
        _rename_bootstrap(cur, writer.user, admin)
    return True
