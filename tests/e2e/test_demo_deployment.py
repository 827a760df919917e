"""End to end, as a user runs it: `dagster dev` with its daemon and sensors on, demo data
published, and every asset of the lineage materialised by the streaming sensors.

The deployment is isolated from a developer's demo: its own topics prefix, PostgreSQL schema
and Dagster database, buckets, LanceDB directory and port.
"""

import json
import re
import socket
import time
import urllib.request

import psycopg
import pytest

from infra.dagster import DagsterService
from infra.postgres import PostgresService
from rag_assets.demo.publisher import DemoConfig, publish_demo_data
from tests.naming import unique_name

pytestmark = pytest.mark.e2e

EXPECTED_EDGES = {
    ("source_records", "identity_graph"),
    ("identity_graph", "customer_profiles"),
    ("conversation_log", "feedback_scored"),
    ("feedback_scored", "kpi_hourly"),
    ("feedback_scored", "kpi_daily"),
    ("documents", "document_chunks"),
    ("customer_profiles", "retrieval_context"),
    ("document_chunks", "retrieval_context"),
}
# The sensor that keeps each streamed asset current, as its asset page names it.
FEEDING_STREAMS = {"source_records": "cdc_stream", "customer_profiles": "cdc_stream",
                   "kpi_daily": "feedback_events_stream", "document_chunks": "documents_stream"}
STREAMED_ASSETS = {"source_records", "identity_graph", "customer_profiles", "conversation_log",
                   "feedback_scored", "kpi_hourly", "kpi_daily", "documents", "document_chunks"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.fixture(scope="module")
def deployment(local_services, infra_settings, tmp_path_factory):
    name = unique_name("e2e").replace("-", "_")
    env = {
        "RAG_TOPIC_PREFIX": f"{name}.", "RAG_PG_SCHEMA": name, "DAGSTER_PG_DB": name,
        "RAG_KB_BUCKET": f"{name.replace('_', '-')}-kb", "RAG_LAKE_BUCKET": f"{name.replace('_', '-')}-lake",
        "LANCEDB_URI": str(tmp_path_factory.mktemp("lancedb")),
    }
    postgres_service = PostgresService(infra_settings)
    postgres_service.create_database(name)
    service = DagsterService(infra_settings, name="dagster-e2e", port=_free_port())
    service.up(extra_env=env)
    try:
        yield service, {**local_services, **env}
    finally:
        service.down()
        postgres_service.drop_database(name)


def _count(env: dict, table: str) -> int:
    with psycopg.connect(host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"],
                         password=env["PGPASSWORD"], dbname=env["PGDATABASE"]) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f'"{env["RAG_PG_SCHEMA"]}".{table}',)).fetchone()[0]
        if exists is None:
            return 0
        return conn.execute(f'SELECT count(*) FROM "{env["RAG_PG_SCHEMA"]}".{table}').fetchone()[0]


def _materialized_assets(url: str) -> set[str]:
    data = _graphql(url, "{ assetNodes { assetKey { path } assetMaterializations(limit: 1) { runId } } }")
    return {node["assetKey"]["path"][-1] for node in data["assetNodes"] if node["assetMaterializations"]}


def test_sensors_carry_demo_data_through_every_streamed_asset(deployment, kafka, s3):
    service, env = deployment
    kafka_for_demo = kafka.model_copy(update={"topic_prefix": env["RAG_TOPIC_PREFIX"]})
    s3_for_demo = s3.model_copy(update={"knowledge_bucket": env["RAG_KB_BUCKET"],
                                        "lake_bucket": env["RAG_LAKE_BUCKET"]})
    s3_for_demo.get_client().create_bucket(Bucket=env["RAG_LAKE_BUCKET"])
    config = DemoConfig(topic_prefix=env["RAG_TOPIC_PREFIX"], knowledge_bucket=env["RAG_KB_BUCKET"],
                        knowledge_prefix="knowledge-base/", people=40, feedback_conversations=12,
                        documents=4)
    summary = publish_demo_data(kafka=kafka_for_demo, s3=s3_for_demo, config=config)
    assert summary["topics"]

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        done = _materialized_assets(service.url)
        if STREAMED_ASSETS <= done and _count(env, "customer_profiles") and _count(env, "kpi_hourly"):
            break
        time.sleep(5)
    assert STREAMED_ASSETS <= _materialized_assets(service.url)
    assert _count(env, "customer_profiles") >= 30  # 40 people, some only in one system
    assert _count(env, "feedback_turns") == summary["topics"][f"{env['RAG_TOPIC_PREFIX']}app.feedback"]
    assert _count(env, "kb_documents") == 4


def _stale_streamed_assets(url: str) -> dict[str, list[str]]:
    data = _graphql(url, "{ assetNodes { assetKey { path } staleStatus "
                         "staleCauses { reason dependency { path } } } }")
    return {node["assetKey"]["path"][-1]: [f"{cause['reason']} ({(cause['dependency'] or {}).get('path')})"
                                            for cause in node["staleCauses"]]
            for node in data["assetNodes"]
            if node["assetKey"]["path"][-1] in STREAMED_ASSETS and node["staleStatus"] != "FRESH"}


def test_caught_up_streamed_assets_show_as_current(deployment):
    # The UI's "Unsynced" comes from Dagster's stale status: once the workers have caught up,
    # every asset they keep current must be FRESH, downstream ones included.
    service, _ = deployment
    deadline = time.monotonic() + 120
    while (stale := _stale_streamed_assets(service.url)) and time.monotonic() < deadline:
        time.sleep(5)
    assert stale == {}


def test_context_answers_from_what_the_sensors_indexed(deployment):
    """The retrieval command, run as a user runs it, over the deployment's stores."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    _, env = deployment
    with psycopg.connect(host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"],
                         password=env["PGPASSWORD"], dbname=env["PGDATABASE"]) as conn:
        email = conn.execute(
            f'SELECT profile->\'golden\'->\'email\'->>\'value\' FROM "{env["RAG_PG_SCHEMA"]}".customer_profiles'
            " WHERE profile->'golden' ? 'email' LIMIT 1").fetchone()[0]
    rag_assets = Path(sys.executable).parent / "rag-assets"
    result = subprocess.run(
        [str(rag_assets), "context", "--customer", email, "--question", "How much baggage can I take?",
         "--k", "3", "--json"],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    assert result.returncode == 0, result.stderr
    bundle = json.loads(result.stdout)
    assert email in json.dumps(bundle["customer"]["profile"]["emails"])
    assert len(bundle["chunks"]) == 3
    assert all(c["provenance"]["doc_key"].startswith("knowledge-base/") for c in bundle["chunks"])


def test_lineage_and_sensors_are_what_the_ui_shows(deployment):
    service, _ = deployment
    data = _graphql(service.url, "{ assetNodes { assetKey { path } groupName dependencyKeys { path } } }")
    edges = {(dep["path"][-1], node["assetKey"]["path"][-1])
             for node in data["assetNodes"] for dep in node["dependencyKeys"]}
    assert EXPECTED_EDGES <= edges
    groups = {node["assetKey"]["path"][-1]: node["groupName"] for node in data["assetNodes"]}
    targeting = _graphql(service.url, "{ assetNodes { assetKey { path } "
                                      "targetingInstigators { ... on Sensor { name } } } }")
    sensors_of = {node["assetKey"]["path"][-1]: {i.get("name") for i in node["targetingInstigators"]}
                  for node in targeting["assetNodes"]}
    for asset, stream in FEEDING_STREAMS.items():
        assert stream in sensors_of[asset], (asset, sensors_of[asset])
    assert groups["customer_profiles"] == "customers" and groups["kpi_daily"] == "feedback"
    assert groups["document_chunks"] == "knowledge"
    sensors = _graphql(service.url, '{ sensorsOrError(repositorySelector: {repositoryName: '
                       '"__repository__", repositoryLocationName: "rag_assets"}) '
                       '{ ... on Sensors { results { name sensorState { status } } } } }')
    states = {s["name"]: s["sensorState"]["status"] for s in sensors["sensorsOrError"]["results"]}
    # Streaming by default (RAG_SENSOR_MODE); the run-per-tick sensors are there, stopped.
    assert {states[name] for name in ("cdc_stream", "feedback_events_stream", "documents_stream",
                                      "erasure_sensor", "automation_sensor")} == {"RUNNING"}
    assert {states[name] for name in ("cdc_sensor", "feedback_sensor",
                                      "s3_documents_sensor")} == {"STOPPED"}


CHROMIUM = "/usr/bin/chromium"
GROUP_ASSETS = {
    "customers": ["source_records", "identity_graph", "customer_profiles"],
    "feedback": ["conversation_log", "feedback_scored", "kpi_hourly", "kpi_daily", "finetune_dataset"],
    "knowledge": ["documents", "document_chunks"],
    "retrieval": ["retrieval_context"],
}


def _in_viewport(page, name: str) -> bool:
    node = page.get_by_text(name, exact=True).first
    if not node.count() or not node.is_visible():
        return False
    box, view = node.bounding_box(), page.viewport_size
    return box is not None and 0 <= box["x"] and box["x"] + box["width"] <= view["width"] \
        and 0 <= box["y"] and box["y"] + box["height"] <= view["height"]


def _expand_every_group(page, assets: list[str]) -> None:
    """The global graph shows each group collapsed: its settings menu expands them all. Then
    zoom out step by step until every asset's name is on screen (the layout depends on how the
    groups connect; too far out and Dagster stops drawing the names)."""
    page.locator("button:has([aria-label='settings'])").last.click()
    page.get_by_role("menuitem", name=re.compile("Expand all groups")).click()
    page.keyboard.press("Escape")
    zoom_out = page.locator("button:has([aria-label='zoom_out'])").last
    for _ in range(12):
        page.wait_for_timeout(500)
        if all(_in_viewport(page, name) for name in assets):
            return
        zoom_out.click()


def _open_with_every_asset(page, url: str, assets: list[str], screenshot,
                           prepare=lambda page: None) -> None:
    """Open a lineage page, wait until each asset's name is on screen, and save a screenshot."""
    from playwright.sync_api import expect

    page.goto(url, wait_until="networkidle", timeout=120_000)
    skip = page.get_by_role("button", name="Skip")  # first-visit community dialog
    if skip.count():
        skip.first.click()
    try:
        prepare(page)
        for name in assets:
            page.get_by_text(name, exact=True).first.wait_for(state="visible", timeout=60_000)
            expect(page.get_by_text(name, exact=True).first).to_be_in_viewport()
    finally:  # also on failure: the screenshot shows what was on screen instead
        page.screenshot(path=screenshot)


@pytest.mark.ui
def test_the_lineage_pages_show_every_asset(deployment):
    """Headless Chromium on each group's lineage page and on the global lineage page (all three
    groups in one graph): the asset names are on screen."""
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    service, _ = deployment
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1800, "height": 2600})
            for group, assets in GROUP_ASSETS.items():
                _open_with_every_asset(page, f"{service.url}/locations/rag_assets/asset-groups/{group}",
                                       assets, artifacts / f"lineage-{group}.png")
            # Dagster's "Global asset lineage": every group of every code location.
            every_asset = [name for assets in GROUP_ASSETS.values() for name in assets]
            _open_with_every_asset(page, f"{service.url}/asset-groups", every_asset,
                                   artifacts / "lineage-all.png",
                                   prepare=lambda page: _expand_every_group(page, every_asset))
        finally:
            browser.close()
