"""The retrieval role (RAG_RETRIEVAL_PGUSER) on the real PostgreSQL: it serves a context call end
to end and writes its audit rows, and it can change nothing, create nothing and read nothing
beyond the tables retrieval reads — also after `ensure_schema` runs again and tables appear."""

import argparse
import io
import json

import pytest
from psycopg.errors import InsufficientPrivilege, UndefinedTable

from rag_assets.customers.cli_commands import customers_cli
from rag_assets.privacy.request_log import ensure_erasure_schema
from rag_assets.knowledge.registry import ensure_knowledge_schema
from rag_assets.platform.db import ensure_schema
from rag_assets.platform.db_roles import (
    RETRIEVAL_GRANTS,
    RETRIEVAL_ROLE_ENV,
    RoleMissing,
    grant_retrieval_access,
)
from rag_assets.retrieval.clients import ensure_retrieval_schema, record_lookup
from rag_assets.retrieval.context import RetrievalService
from rag_assets.retrieval.http import EndpointRefused, server_config
from tests.integration.retrieval.test_http_hardening import (
    BODY,
    _free_port,
    bearer,
    call,
    clients,
    serving,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def reader(postgres, local_services):
    """The test's schema as the retrieval role sees it."""
    return postgres.model_copy(update={"user": local_services[RETRIEVAL_ROLE_ENV],
                                       "password": local_services["RAG_RETRIEVAL_PGPASSWORD"]})


def ensure_every_table(postgres) -> None:
    """Every table of the product schema, made by the pipelines' role."""
    with postgres.transaction() as cur:
        ensure_erasure_schema(cur, postgres.db_schema)  # platform, customers, feedback
        ensure_knowledge_schema(cur, postgres.db_schema)
        ensure_retrieval_schema(cur, postgres.db_schema)


def refused(reader, statement: str) -> None:
    with pytest.raises(InsufficientPrivilege):
        with reader.transaction() as cur:
            cur.execute(statement)


def test_the_role_serves_a_context_call_end_to_end_and_writes_its_audit_row(
        retrieval_world, postgres, reader):
    admin_service, _ = retrieval_world
    service = RetrievalService(reader, admin_service.lancedb, admin_service.embedder)
    with reader.transaction() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone()[0] == reader.user != postgres.user

    bundle = service.context("alice@example.org", "How heavy can my cabin bag be?", k=1)
    alice = bundle["customer"]["customer_id"]
    assert bundle["customer"]["profile"]["golden"]["given_name"]["value"] == "Alice"
    assert bundle["chunks"][0]["provenance"]["doc_key"].endswith("baggage/cabin.md")
    assert bundle["chunks"][0]["indexed_at"]  # read from the document registry
    for reference in ("crm:1", alice, "+44 7700 900001"):  # record, customer id, phone
        assert service.context(reference, "lounge", k=1)["customer"]["customer_id"] == alice

    out = io.StringIO()  # `rag-assets customer`, which reads as the role from the environment
    args = argparse.Namespace(command="customer", ref="crm:1", json=True,
                              pg_schema=postgres.db_schema)
    assert customers_cli(args, out=out) == 0 and json.loads(out.getvalue())["customer_id"] == alice

    code, token = clients(postgres, "add", "app-r")  # an administrator's command
    assert code == 0
    with serving(service) as port:
        status, _, served = call(port, "POST", "/v1/context",
                                 {**BODY, "customer": "alice@example.org"}, bearer(token.strip()))
    assert status == 200 and served["customer"]["customer_id"] == alice
    with postgres.transaction() as cur:
        cur.execute("SELECT client_id, customer_id FROM retrieval_audit")
        assert cur.fetchall() == [("app-r", alice)]


@pytest.mark.parametrize("statement", [
    "INSERT INTO customer_profiles DEFAULT VALUES",
    "UPDATE customer_profiles SET version = version",
    "DELETE FROM identity_lookup",
    "TRUNCATE customer_assignments",
    "UPDATE kb_documents SET status = status",
    "INSERT INTO retrieval_clients DEFAULT VALUES",
    "UPDATE retrieval_clients SET revoked_at = NULL",
    "DELETE FROM retrieval_clients",
    "UPDATE retrieval_audit SET client_id = client_id",
    "DELETE FROM retrieval_audit",
    "SELECT count(*) FROM retrieval_audit",
    "CREATE TABLE planted (a int)",
    "CREATE TEMP TABLE planted (a int)",
    "CREATE SCHEMA planted",
    "SELECT count(*) FROM dead_letters",
    "SELECT count(*) FROM source_records",
    "SELECT count(*) FROM feedback_turns",
    "SELECT count(*) FROM erasure_requests",
    "SELECT count(*) FROM applied_offsets",
])
def test_the_role_can_change_create_and_read_nothing_else(postgres, reader, statement):
    ensure_every_table(postgres)
    refused(reader, statement)


def test_the_role_cannot_run_ensure_schema(postgres, reader):
    ensure_every_table(postgres)
    with pytest.raises(InsufficientPrivilege):
        with reader.transaction() as cur:
            ensure_schema(cur, reader.db_schema)


def test_the_grants_are_exactly_what_retrieval_reads_and_appends(postgres, reader):
    ensure_every_table(postgres)
    with postgres.transaction() as cur:
        cur.execute("SELECT table_name, privilege_type FROM information_schema.role_table_grants"
                    " WHERE grantee = %s AND table_schema = %s", (reader.user, postgres.db_schema))
        granted = set(cur.fetchall())
    assert granted == {
        *((table, "SELECT") for table in RETRIEVAL_GRANTS.select),
        *((table, "INSERT") for table in RETRIEVAL_GRANTS.append)}
    with postgres.transaction() as cur:
        cur.execute("SELECT object_type, object_name, privilege_type"
                    " FROM information_schema.usage_privileges"
                    " WHERE grantee = %s AND object_schema = %s", (reader.user, postgres.db_schema))
        assert cur.fetchall() == [("SEQUENCE", "retrieval_audit_id_seq", "USAGE")]


def test_grants_hold_after_ensure_schema_again_and_reach_tables_made_later(postgres, reader):
    with postgres.transaction() as cur:
        ensure_schema(cur, postgres.db_schema)  # the platform's tables only
    with pytest.raises(UndefinedTable):
        with reader.transaction() as cur:
            cur.execute("SELECT count(*) FROM retrieval_clients")

    ensure_every_table(postgres)  # the retrieval tables appear: granted by the call making them
    with reader.transaction() as cur:
        cur.execute("SELECT count(*) FROM retrieval_clients")
        record_lookup(cur, "app-r", None)
    ensure_every_table(postgres)
    with postgres.transaction() as cur:
        assert grant_retrieval_access(cur, postgres.db_schema) == 0  # nothing left to grant

    with postgres.transaction() as cur:  # a table dropped and made again is granted again
        cur.execute("DROP TABLE kb_documents")
        cur.execute("DELETE FROM schema_files WHERE name LIKE 'rag_assets.knowledge/%'")
    ensure_every_table(postgres)
    with reader.transaction() as cur:
        cur.execute("SELECT count(*) FROM kb_documents")
        record_lookup(cur, "app-r", "cus_x")
    with postgres.transaction() as cur:  # a table outside the grant stays closed
        cur.execute("CREATE TABLE made_later (a int)")
    ensure_every_table(postgres)
    refused(reader, "SELECT count(*) FROM made_later")
    refused(reader, "SELECT count(*) FROM dead_letters")
    with postgres.transaction() as cur:
        cur.execute("SELECT count(*) FROM retrieval_audit")
        assert cur.fetchone()[0] == 2


def test_a_configured_role_that_does_not_exist_stops_ensure_schema_saying_what_to_do(
        postgres, monkeypatch):
    monkeypatch.setenv(RETRIEVAL_ROLE_ENV, "rag_no_such_role")
    with pytest.raises(RoleMissing, match="RAG_RETRIEVAL_PGUSER names the role 'rag_no_such_role'"
                                          ", which does not exist"):
        with postgres.transaction() as cur:
            ensure_schema(cur, postgres.db_schema)


def test_the_server_as_the_role_refuses_a_schema_the_pipelines_never_made(reader, lancedb):
    service = RetrievalService(reader, lancedb, embedder=None)
    with pytest.raises(EndpointRefused, match="the retrieval tables are not in schema"):
        server_config(service, "127.0.0.1", _free_port(), insecure_no_auth=True)


def test_the_server_as_the_role_refuses_tables_made_without_granting_it(
        postgres, reader, lancedb, monkeypatch):
    with monkeypatch.context() as unset:  # pipelines whose environment does not name the role
        unset.delenv(RETRIEVAL_ROLE_ENV)
        ensure_every_table(postgres)
    service = RetrievalService(reader, lancedb, embedder=None)
    with pytest.raises(EndpointRefused, match="this role lacks USAGE on test_.*SELECT on "
                                              "customer_profiles.*names it in their environment"):
        server_config(service, "127.0.0.1", _free_port(), insecure_no_auth=True)
    ensure_every_table(postgres)  # a pipeline with the role configured
    assert server_config(service, "127.0.0.1", _free_port(), insecure_no_auth=True)


def test_retrieval_and_the_profile_look_up_connect_as_the_role_when_it_is_set(
        local_services, monkeypatch):
    from rag_assets.retrieval.context import service_from_env
    from resources.defaults import reader_postgres_from_environment

    assert reader_postgres_from_environment().user == local_services[RETRIEVAL_ROLE_ENV]
    assert service_from_env(embedder=object()).postgres.user == local_services[RETRIEVAL_ROLE_ENV]
    monkeypatch.delenv(RETRIEVAL_ROLE_ENV)
    assert reader_postgres_from_environment().user == local_services["PGUSER"]
