"""Dagster's storage as dagster.yaml configures it: dagster-postgres's, with pooled connections."""

from __future__ import annotations

import pytest
import yaml
from dagster import DagsterInstance
from sqlalchemy.pool import QueuePool

from infra.postgres import PostgresService
from infra.settings import REPO_ROOT
from rag_assets.platform.dagster_storage import POOL_SIZE
from tests.naming import unique_name

pytestmark = pytest.mark.integration


@pytest.fixture
def instance(local_services, infra_settings, tmp_path, monkeypatch):
    name = unique_name("storage").replace("-", "_")
    postgres = PostgresService(infra_settings)
    postgres.create_database(name)
    monkeypatch.setenv("DAGSTER_PG_DB", name)
    (tmp_path / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    try:
        with DagsterInstance.from_config(str(tmp_path)) as instance:
            yield instance
    finally:
        postgres.drop_database(name)


def _engines(instance: DagsterInstance) -> list:
    return [instance.run_storage._engine, instance.event_log_storage._engine,
            instance.schedule_storage._engine]


def test_the_repositorys_config_gives_pooled_connections(instance):
    for engine in _engines(instance):
        assert isinstance(engine.pool, QueuePool) and engine.pool.size() == POOL_SIZE


def test_storage_calls_reuse_a_connection_instead_of_opening_one_each(instance):
    for _ in range(20):
        assert instance.get_runs_count() == 0
        instance.all_instigator_state()
    run_pool = instance.run_storage._engine.pool
    assert run_pool.checkedin() == 1 and run_pool.checkedout() == 0  # one, kept for the next call


def test_the_plain_storage_is_what_it_replaces():
    # The class is dagster-postgres's composite storage; only its engines differ.
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())["storage"]["custom"]
    assert (config["module"], config["class"]) == ("rag_assets.platform.dagster_storage",
                                                   "PooledPostgresStorage")
    assert set(config["config"]) == {"postgres_db"}
