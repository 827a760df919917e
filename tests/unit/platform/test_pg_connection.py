"""Connection settings from the libpq variables, without Dagster."""

from __future__ import annotations

import pytest

from rag_assets.platform.db_roles import reader_login_env
from rag_assets.platform.pg_connection import PgConnector, connector_from_env
from resources.defaults import resource_from_environment

ENV = {"PGHOST": "db.internal", "PGPORT": "6543", "PGUSER": "rag", "PGPASSWORD": "s3cret",
       "PGDATABASE": "rag", "RAG_RETRIEVAL_PGUSER": "reader", "RAG_RETRIEVAL_PGPASSWORD": "r3ad"}


def test_the_settings_come_from_the_libpq_variables():
    connector = connector_from_env(environ={**ENV, "RAG_PG_SCHEMA": "tenant_a"})
    assert connector == PgConnector(host="db.internal", port=6543, user="rag", password="s3cret",
                                    database="rag", db_schema="tenant_a")
    assert "s3cret" not in repr(connector)
    assert connector_from_env(environ=ENV).db_schema == "rag"


def test_a_missing_variable_is_named():
    environ = {k: v for k, v in ENV.items() if k not in ("PGHOST", "PGDATABASE")}
    with pytest.raises(KeyError, match="PostgreSQL settings missing from the environment: "
                                       "PGHOST, PGDATABASE"):
        connector_from_env(environ=environ)


def test_readers_log_in_as_the_retrieval_role_when_one_is_configured(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert connector_from_env(*reader_login_env()).user == "reader"
    monkeypatch.delenv("RAG_RETRIEVAL_PGUSER")
    assert connector_from_env(*reader_login_env()).user == "rag"


def test_the_resource_connects_with_the_same_settings(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert resource_from_environment("postgres").connector == connector_from_env()
