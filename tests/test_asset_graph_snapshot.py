"""The asset graph as the UI shows it, against a reviewed snapshot (tests/asset_graph.json).

Every asset's key, group, kinds, owners, dependencies and checks, every sensor's target and every
job's assets: a change to the graph shows up as a diff of the snapshot in review. After an
intended change, rewrite it with

    RAG_UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest tests/test_asset_graph_snapshot.py
"""

from __future__ import annotations

import json
import os

from infra.settings import REPO_ROOT, InfraSettings, connection_env

SNAPSHOT = REPO_ROOT / "tests" / "asset_graph.json"


def graph_description() -> dict:
    from rag_assets.definitions import defs

    repository = defs.get_repository_def()
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "external": node.is_external,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "checks": sorted(check.name for check in node.check_keys),
            "has_description": bool(node.description),
        }
    sensors = {}
    for sensor in sorted(repository.sensor_defs, key=lambda s: s.name):
        target = sensor.asset_selection.resolve(graph) if sensor.asset_selection else set()
        sensors[sensor.name] = {
            "jobs": sorted(target.job_name for target in sensor.targets if target.job_name),
            "assets": sorted(key.to_user_string() for key in target),
            "resources": sorted(sensor.required_resource_keys),
        }
    jobs = {job.name: sorted(key.to_user_string() for key in job.asset_layer.executable_asset_keys)
            for job in sorted(repository.get_all_jobs(), key=lambda j: j.name)
            if not job.name.startswith("__")}
    return {"assets": assets, "sensors": sensors, "jobs": jobs}


def test_the_asset_graph_is_the_reviewed_one(monkeypatch):
    for name, value in connection_env(InfraSettings.from_env()).items():
        monkeypatch.setenv(name, value)
    current = graph_description()
    if os.environ.get("RAG_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), (
        "the asset graph changed: review the difference, then rewrite tests/asset_graph.json "
        "with RAG_UPDATE_SNAPSHOT=1")
