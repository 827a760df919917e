"""dagster.yaml loads into a working instance on the project's PostgreSQL."""

import pytest
from dagster import DagsterInstance
from dagster._core.run_coordinator import QueuedRunCoordinator

from infra.dagster import prepare_dagster_home

pytestmark = pytest.mark.integration


def test_instance_config_loads_with_postgres_storage_and_the_run_queue(local_services, infra_settings, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(prepare_dagster_home(infra_settings)))
    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        assert {limit["key"] for limit in coordinator.get_run_queue_config().tag_concurrency_limits} == {"rag/source"}
        assert instance.run_monitoring_enabled
        assert instance.get_daemon_statuses()  # the daemon's required types resolve
