"""The pipelines' PostgreSQL role on the real server: `rag` is no superuser and owns the product
and Dagster databases, the superuser `rag_admin` is infra's alone, and a cluster made by the
previous version (`rag` its bootstrap superuser) is moved to that layout by `infra up` without
losing data; a second `up` changes nothing."""

import shutil
import socket
from dataclasses import replace

import psycopg
import pytest
from dagster import DagsterInstance, asset, materialize
from psycopg import sql
from psycopg.errors import InsufficientPrivilege

from infra.dagster import prepare_dagster_home
from infra.postgres import PostgresService, _ensure_retrieval_role
from infra.postgres_roles import MIGRATION_ROLE
from infra.services import export_lines
from infra.settings import (
    ADMIN_PASSWORD_SECRET,
    ADMIN_ROLE,
    REPO_ROOT,
    connection_env,
    local_secrets,
)
from resources.postgres import PostgresResource
from tests.integration.retrieval.test_retrieval_role import ensure_every_table
from tests.naming import unique_name

pytestmark = pytest.mark.integration


def connect(env: dict, dbname: str | None = None, user: str | None = None,
            password: str | None = None) -> psycopg.Connection:
    return psycopg.connect(host=env["PGHOST"], port=env["PGPORT"], user=user or env["PGUSER"],
                           password=password or env["PGPASSWORD"],
                           dbname=dbname or env["PGDATABASE"], autocommit=True)


def role_attributes(conn, role: str) -> tuple:
    return conn.execute(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin"
        " FROM pg_roles WHERE rolname = %s", (role,)).fetchone()


PLAIN_LOGIN = (False, False, False, False, False, True)


# --- the layout `infra up` makes --------------------------------------------------------------


def test_rag_is_a_plain_login_role(local_services):
    with connect(local_services) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "rag"
        assert role_attributes(conn, "rag") == PLAIN_LOGIN
        assert role_attributes(conn, ADMIN_ROLE)[0] is True  # the superuser, kept for infra


@pytest.mark.parametrize("statement, message", [
    ("CREATE DATABASE planted", "permission denied to create database"),
    ("CREATE ROLE planted", "permission denied to create role"),
    ("ALTER ROLE rag SUPERUSER", "permission denied to alter role"),
    ("ALTER ROLE rag CREATEDB", "permission denied to alter role"),
    ("COPY (SELECT 1) TO '/tmp/planted'", "permission denied to COPY to a file"),
])
def test_rag_cannot_create_databases_or_roles_or_raise_itself(local_services, statement, message):
    with connect(local_services) as conn:
        with pytest.raises(InsufficientPrivilege, match=message):
            conn.execute(statement)


def test_rag_owns_the_product_and_dagster_databases_and_makes_tables_in_them(local_services):
    for database in (local_services["PGDATABASE"], local_services["DAGSTER_PG_DB"]):
        with connect(local_services, database) as conn:
            owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database"
                                 " WHERE datname = current_database()").fetchone()[0]
            assert owner == "rag"
            table = unique_name("t").replace("-", "_")
            # Dagster's storage makes its tables in `public`, which belongs to the owner.
            conn.execute(sql.SQL("CREATE TABLE public.{} (id bigserial)").format(
                sql.Identifier(table)))
            conn.execute(sql.SQL("DROP TABLE public.{}").format(sql.Identifier(table)))


def test_the_admin_password_stays_with_infra(infra_settings, local_services):
    admin_password = local_secrets(infra_settings)[ADMIN_PASSWORD_SECRET]
    assert ADMIN_PASSWORD_SECRET not in connection_env(infra_settings)
    assert admin_password not in connection_env(infra_settings).values()
    assert admin_password not in export_lines(infra_settings)
    with connect(local_services, "postgres", ADMIN_ROLE, admin_password) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                            ).fetchone()[0] is True


def test_the_retrieval_role_reads_what_rag_grants_it(postgres, local_services):
    ensure_every_table(postgres)  # as rag: the tables and the grants
    reader = postgres.model_copy(update={"user": local_services["RAG_RETRIEVAL_PGUSER"],
                                         "password": local_services["RAG_RETRIEVAL_PGPASSWORD"]})
    with reader.transaction() as cur:
        cur.execute("SELECT count(*) FROM customer_profiles")
        assert cur.fetchone()[0] == 0
    with pytest.raises(InsufficientPrivilege, match="permission denied for table dead_letters"):
        with reader.transaction() as cur:
            cur.execute("SELECT count(*) FROM dead_letters")


def test_infra_creates_and_drops_a_database_owned_by_rag(infra_settings, local_services):
    service = PostgresService(infra_settings)
    name = unique_name("db").replace("-", "_")
    service.create_database(name)
    try:
        with connect(local_services, name) as conn:
            assert conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database"
                                " WHERE datname = current_database()").fetchone()[0] == "rag"
            conn.execute("CREATE TABLE public.runs (id bigserial)")
    finally:
        service.drop_database(name)
    with connect(local_services, "postgres") as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (name,)).fetchone() is None


# --- moving a cluster made by the previous version --------------------------------------------


class PreviousLayoutPostgres(PostgresService):
    """PostgreSQL as the version before `rag_admin` made it: initdb's bootstrap superuser is
    `rag` with PGPASSWORD, and `rag` creates the databases and the retrieval role."""

    @property
    def admin(self):
        return self.writer

    def _prepare_cluster(self) -> None:
        env = connection_env(self.settings)
        with self._connect(self.writer, "postgres") as conn, conn.cursor() as cur:
            for name in (env["PGDATABASE"], env["DAGSTER_PG_DB"]):
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            _ensure_retrieval_role(cur, env)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def previous_cluster(infra_settings):
    """Settings of a private state directory whose PostgreSQL the previous version made."""
    # Under the checkout: the server's own user cannot traverse /tmp/pytest-of-root.
    state = REPO_ROOT / ".state" / unique_name("pg-roles")
    settings = replace(infra_settings, state_dir=state, postgres_port=_free_port())
    old = PreviousLayoutPostgres(settings)
    try:
        old.up()
        yield settings
    finally:
        PostgresService(settings).down()
        shutil.rmtree(state, ignore_errors=True)


# Made as the old `rag`, beside the product's own tables: every kind of object the hand-over
# covers, and a column-owned and an identity sequence.
EXTRA_OBJECTS = """
    CREATE TYPE moved.mood AS ENUM ('calm', 'busy');
    CREATE DOMAIN moved.positive AS integer CHECK (VALUE > 0);
    CREATE TYPE moved.pair AS (a integer, b integer);
    CREATE SEQUENCE moved.standalone;
    CREATE TABLE moved.notes (id bigserial PRIMARY KEY, n moved.positive, mood moved.mood,
                              body text);
    CREATE TABLE moved.tags (id integer GENERATED ALWAYS AS IDENTITY, tag text);
    CREATE VIEW moved.calm_notes AS SELECT * FROM moved.notes WHERE mood = 'calm';
    CREATE MATERIALIZED VIEW moved.note_count AS SELECT count(*) AS n FROM moved.notes;
    CREATE FUNCTION moved.double(x integer) RETURNS integer LANGUAGE sql AS 'SELECT 2 * x';
    CREATE PROCEDURE moved.add_note(body text) LANGUAGE sql
        AS 'INSERT INTO moved.notes (n, mood, body) VALUES (1, ''calm'', body)';
    INSERT INTO moved.notes (n, mood, body) VALUES (1, 'calm', 'kept'), (2, 'busy', 'also kept');
    INSERT INTO moved.tags (tag) VALUES ('a'), ('b');
"""


def _dagster_instance(settings, monkeypatch) -> DagsterInstance:
    """The Dagster instance of dagster.yaml on the cluster of `settings`, as PGUSER."""
    for name, value in connection_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(prepare_dagster_home(settings)))
    return DagsterInstance.get()


@asset
def heartbeat() -> int:
    return 1


def _product_data(env: dict) -> dict:
    with connect(env) as conn:
        return {
            "schema_files": conn.execute(
                "SELECT name, sha256 FROM moved.schema_files ORDER BY name").fetchall(),
            "notes": conn.execute("SELECT id, n, mood, body FROM moved.notes ORDER BY id"
                                  ).fetchall(),
            "tags": conn.execute("SELECT id, tag FROM moved.tags ORDER BY id").fetchall(),
        }


def _objects_owned_by_admin(env: dict, database: str) -> list:
    """Objects outside the system schemas that the admin (the bootstrap role, oid 10) owns."""
    with connect(env, database) as conn:
        return conn.execute("""
            WITH s AS (SELECT oid, nspname, nspowner FROM pg_namespace
                       WHERE nspname NOT IN ('pg_catalog', 'information_schema')
                         AND nspname !~ '^pg_(toast|temp_)')
            SELECT 'schema', nspname FROM s WHERE nspowner = 10
            UNION ALL SELECT 'relation', relname FROM pg_class JOIN s ON s.oid = relnamespace
                      WHERE relowner = 10
            UNION ALL SELECT 'routine', proname FROM pg_proc JOIN s ON s.oid = pronamespace
                      WHERE proowner = 10
            UNION ALL SELECT 'type', typname FROM pg_type JOIN s ON s.oid = typnamespace
                      WHERE typowner = 10""").fetchall()


def _catalogue(env: dict, admin_password: str) -> dict:
    """Roles, databases and every object's owner and privileges: what a second `up` must
    leave as it is."""
    snapshot = {}
    for database in ("postgres", env["PGDATABASE"], env["DAGSTER_PG_DB"]):
        with connect(env, database, ADMIN_ROLE, admin_password) as conn:
            snapshot[database] = conn.execute("""
                SELECT 'role', rolname, rolsuper::text || rolcanlogin::text, NULL::text
                FROM pg_roles WHERE rolname !~ '^pg_'
                UNION ALL SELECT 'database', datname, datdba::regrole::text, datacl::text
                FROM pg_database
                UNION ALL SELECT 'schema', nspname, nspowner::regrole::text, nspacl::text
                FROM pg_namespace
                UNION ALL SELECT 'relation', oid::regclass::text, relowner::regrole::text,
                                 relacl::text FROM pg_class
                UNION ALL SELECT 'routine', oid::regprocedure::text, proowner::regrole::text,
                                 proacl::text FROM pg_proc
                ORDER BY 1, 2""").fetchall()
    return snapshot


def test_infra_up_moves_a_previous_cluster_to_the_writer_role_keeping_its_data(
        previous_cluster, monkeypatch):
    settings = previous_cluster
    env = connection_env(settings)
    admin_password = local_secrets(settings)[ADMIN_PASSWORD_SECRET]
    old_rag = PostgresResource(host=env["PGHOST"], port=int(env["PGPORT"]), user="rag",
                               password=env["PGPASSWORD"], database=env["PGDATABASE"],
                               db_schema="moved")
    ensure_every_table(old_rag)
    with connect(env) as conn:
        assert conn.execute("SELECT oid, rolsuper FROM pg_roles WHERE rolname = 'rag'"
                            ).fetchone() == (10, True)
        conn.execute(EXTRA_OBJECTS)
    with _dagster_instance(settings, monkeypatch) as instance:
        assert materialize([heartbeat], instance=instance).success
    before = _product_data(env)

    service = PostgresService(settings)
    service.down()
    assert service.up()  # the move happens here

    with connect(env, "postgres") as conn:
        assert role_attributes(conn, "rag") == PLAIN_LOGIN
        assert conn.execute("SELECT rolname, rolsuper FROM pg_roles WHERE oid = 10"
                            ).fetchone() == (ADMIN_ROLE, True)
        assert role_attributes(conn, MIGRATION_ROLE) is None
        owners = dict(conn.execute("SELECT datname, pg_get_userbyid(datdba) FROM pg_database"))
    assert owners[env["PGDATABASE"]] == owners[env["DAGSTER_PG_DB"]] == "rag"
    for database in (env["PGDATABASE"], env["DAGSTER_PG_DB"]):
        assert _objects_owned_by_admin(env, database) == []
    assert _product_data(env) == before

    # The new rag changes what it owns: the product's DDL again (CREATE OR REPLACE FUNCTION
    # needs the function's owner), inserts through both sequences, a materialised view refresh.
    with connect(env) as conn:
        conn.execute("SET search_path TO moved")
        conn.execute("CALL moved.add_note('after')")
        conn.execute("INSERT INTO moved.tags (tag) VALUES ('c')")
        conn.execute("REFRESH MATERIALIZED VIEW moved.note_count")
        conn.execute("ALTER TABLE moved.notes ADD COLUMN extra text")
        assert conn.execute("SELECT n FROM moved.note_count").fetchone()[0] == 3
        assert conn.execute("SELECT moved.double(21)").fetchone()[0] == 42
        assert conn.execute("SELECT (1, 2)::moved.pair").fetchone()[0] == "(1,2)"
        conn.execute("SELECT setval('moved.standalone', 5)")
    with old_rag.transaction() as cur:  # now the plain rag role, same name and password
        cur.execute("DELETE FROM schema_files")  # so that every schema file runs again
    ensure_every_table(old_rag)
    reader = old_rag.model_copy(update={"user": env["RAG_RETRIEVAL_PGUSER"],
                                        "password": env["RAG_RETRIEVAL_PGPASSWORD"]})
    with reader.transaction() as cur:  # its grants went over to the new owner
        cur.execute("SELECT count(*) FROM customer_profiles")
    with _dagster_instance(settings, monkeypatch) as instance:
        assert materialize([heartbeat], instance=instance).success
        assert len(instance.get_runs()) == 2

    catalogue = _catalogue(env, admin_password)
    assert service.up() is False  # running already: roles and databases checked again
    assert _catalogue(env, admin_password) == catalogue


def test_a_move_cut_short_is_finished_by_the_next_up(previous_cluster):
    """A move that stopped right after making its temporary superuser (the server stopped, the
    process killed) ends like one that was never interrupted."""
    env = connection_env(previous_cluster)
    admin_password = local_secrets(previous_cluster)[ADMIN_PASSWORD_SECRET]
    with connect(env) as conn:
        conn.execute("CREATE TABLE public.kept (v text); INSERT INTO public.kept VALUES ('x')")
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
            sql.Identifier(MIGRATION_ROLE), sql.Literal(admin_password)))

    assert PostgresService(previous_cluster).up() is False  # running: the move happens here

    with connect(env) as conn:
        assert role_attributes(conn, "rag") == PLAIN_LOGIN
        assert role_attributes(conn, MIGRATION_ROLE) is None
        assert conn.execute("SELECT v FROM public.kept").fetchall() == [("x",)]
        conn.execute("INSERT INTO public.kept VALUES ('y')")
    assert _objects_owned_by_admin(env, env["PGDATABASE"]) == []
