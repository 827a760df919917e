"""The code location loads as the webserver and daemon load it."""

import subprocess
import sys
from pathlib import Path

from dagster import AssetKey

from infra.settings import REPO_ROOT, InfraSettings, connection_env


def _env(monkeypatch) -> None:
    for name, value in connection_env(InfraSettings.from_env()).items():
        monkeypatch.setenv(name, value)


def test_definitions_load_with_every_resource(monkeypatch):
    _env(monkeypatch)
    from rag_assets.definitions import defs

    repository = defs.get_repository_def()
    assert {"kafka", "s3", "postgres", "lancedb"} <= set(repository.get_top_level_resources())
    assert {"cdc_sensor", "feedback_sensor", "erasure_sensor", "s3_documents_sensor"} <= {
        s.name for s in repository.sensor_defs}


def test_every_job_runs_its_steps_in_the_run_process(monkeypatch):
    """A step process per step cost a runs-mode deployment ~20 s of imports per step."""
    _env(monkeypatch)
    from rag_assets.definitions import defs

    jobs = defs.get_repository_def().get_all_jobs()
    assert {"customers_cdc", "feedback_stream", "knowledge_documents"} <= {j.name for j in jobs}
    assert {j.name: j.executor_def.name for j in jobs} == {j.name: "in_process" for j in jobs}


def test_dagster_validates_the_workspace(monkeypatch, tmp_path):
    _env(monkeypatch)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    dagster = Path(sys.executable).parent / "dagster"
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(REPO_ROOT / "workspace.yaml")],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_every_source_has_a_lag_check_and_every_fed_asset_a_freshness_policy(monkeypatch):
    _env(monkeypatch)
    from rag_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    checks = {key.name: key.asset_key.to_user_string() for key in graph.asset_check_keys}
    assert checks["cdc_lag"] == "source_records"
    assert checks["feedback_lag"] == "conversation_log"
    assert checks["documents_lag"] == "documents"
    without_policy = {key.to_user_string() for key in graph.get_all_asset_keys()
                      if graph.get(key).freshness_policy is None
                      and graph.get(key).is_materializable}
    assert without_policy == {"customer_erasures"}  # runs only when someone asks to be erased


def test_every_catalogued_source_is_an_external_asset_upstream_of_its_consumer(monkeypatch):
    _env(monkeypatch)
    from rag_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    sources = {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()
               if key.path[0] == "sources"}
    # The demo catalogue (rag_assets/demo/catalogue.yaml): four tables and the document prefix.
    assert set(sources) == {"sources/crm/customers", "sources/booking/bookings",
                            "sources/loyalty/members", "sources/support/tickets",
                            "sources/documents"}
    assert not any(node.is_materializable for node in sources.values())
    records = graph.get(AssetKey("source_records"))
    assert {k.to_user_string() for k in records.parent_keys} == set(sources) - {"sources/documents"}
    assert AssetKey(["sources", "documents"]) in graph.get(AssetKey("documents")).parent_keys
    crm = sources["sources/crm/customers"].metadata
    assert crm["topics"].value == "cdc.crm.customers"
    assert crm["identity_columns"].value["email"] == "email"
    assert crm["catalogue"].value.endswith("catalogue.yaml:10")
