"""deploy/helm/values.yaml, for the official Dagster chart.

The chart's own values.schema.json is not shipped by any package of the registries this project
installs from (PyPI, npm, ...), so these values are NOT checked against it here. What is checked:
the Kubernetes objects embedded in them (resources, security contexts, probes, volumes, env
sources) against the Kubernetes schemas of kubernetes-validate, and our own invariants — the
instance settings equal to dagster.yaml, the image and the command of the code location, the
K8sRunLauncher and secrets referenced by name only, the PostgreSQL host equal to the ConfigMap's.
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache

import jsonschema
import pytest
import yaml
from kubernetes_validate.utils import latest_version, schema_contents
from referencing import Registry, Resource

from tests.unit.deploy.deploy_files import (
    REPO,
    config_map,
    containers,
    dockerfile_stages,
    helm_values,
    image_user_id,
    product_string_literals,
    pyproject,
    user_deployment,
)

CONFIG_MAP, SECRET = "rag-assets-config", "rag-assets-secrets"


@cache
def kubernetes_type(name: str) -> jsonschema.Validator:
    """A strict validator for one Kubernetes type, e.g. `io.k8s.api.core.v1.Probe`."""
    version = latest_version()
    definitions = schema_contents(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ Registry()
    return jsonschema.Draft202012Validator({"$ref": f"{definitions['$id']}#/$defs/{name}"},
                                           registry=registry)


def embedded_kubernetes_objects() -> list[tuple[str, str, object]]:
    """(where, Kubernetes type, value) of every Kubernetes object inside the values."""
    core = "io.k8s.api.core.v1."
    found = []
    code = user_deployment()
    launcher = helm_values()["runLauncher"]["config"]["k8sRunLauncher"]
    for where, holder in (("user deployment", code), ("run launcher", launcher)):
        for key, kind in (("resources", "ResourceRequirements"),
                          ("securityContext", "SecurityContext"),
                          ("podSecurityContext", "PodSecurityContext"),
                          ("readinessProbe", "Probe"), ("livenessProbe", "Probe")):
            if key in holder:
                found.append((f"{where}.{key}", core + kind, holder[key]))
        for key, kind in (("volumes", "Volume"), ("volumeMounts", "VolumeMount"),
                          ("envConfigMaps", "ConfigMapEnvSource"),
                          ("envSecrets", "SecretEnvSource"), ("env", "EnvVar")):
            for index, item in enumerate(holder.get(key, [])):
                found.append((f"{where}.{key}[{index}]", core + kind, item))
    return found


@pytest.mark.parametrize("where,kind,value", embedded_kubernetes_objects(),
                         ids=[where for where, _, _ in embedded_kubernetes_objects()])
def test_embedded_kubernetes_objects_are_valid(where, kind, value):
    kubernetes_type(kind).validate(value)


def test_the_kubernetes_type_check_rejects_an_unknown_field():
    with pytest.raises(jsonschema.ValidationError):
        kubernetes_type("io.k8s.api.core.v1.SecurityContext").validate({"runAsNonRot": True})


# --- the instance: the same settings as dagster.yaml ------------------------------------------


def camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word.title() for word in rest)


def camel_keys(value):
    if isinstance(value, dict):
        return {camel(key): camel_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [camel_keys(item) for item in value]
    return value


@cache
def instance() -> dict:
    return yaml.safe_load((REPO / "dagster.yaml").read_text())


def test_the_run_queue_is_the_one_of_dagster_yaml():
    coordinator = helm_values()["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True
    assert coordinator["type"] == instance()["run_coordinator"]["class"]
    assert coordinator["config"]["queuedRunCoordinator"] == camel_keys(
        instance()["run_coordinator"]["config"])


@pytest.mark.parametrize("section", ["run_monitoring", "run_retries", "sensors", "schedules"])
def test_daemon_settings_are_the_ones_of_dagster_yaml(section):
    assert helm_values()["dagsterDaemon"][camel(section)] == camel_keys(instance()[section])


def test_telemetry_is_off_as_in_dagster_yaml():
    assert helm_values()["telemetry"] == instance()["telemetry"]


def test_the_instance_database_is_the_one_the_product_uses():
    postgres = helm_values()["postgresql"]
    local = instance()["storage"]["custom"]["config"]["postgres_db"]
    assert postgres["enabled"] is False  # external, not the chart's own PostgreSQL
    assert postgres["postgresqlScheme"] == local["scheme"]
    settings = config_map()
    assert postgres["postgresqlHost"] == settings[local["hostname"]["env"]]
    assert str(postgres["service"]["port"]) == settings[local["port"]["env"]]
    assert postgres["postgresqlUsername"] == settings[local["username"]["env"]]
    assert postgres["postgresqlDatabase"] == settings[local["db_name"]["env"]]


def test_the_instance_password_comes_from_a_secret_made_by_hand():
    values = helm_values()
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert "postgresqlPassword" not in values["postgresql"]


def strings_under_secret_looking_keys(value, path="") -> list[str]:
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if re.search(r"password|secret(?!name)|token|accesskey", key, re.I) and isinstance(
                    item, str):
                found.append(f"{path}.{key}")
            found += strings_under_secret_looking_keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict) and isinstance(item.get("name"), str) and "value" in item \
                    and re.search(r"PASSWORD|SECRET|TOKEN|_KEY", item["name"]):
                found.append(f"{path}[{index}]={item['name']}")
            found += strings_under_secret_looking_keys(item, f"{path}[{index}]")
    return found


def test_no_secret_value_is_inlined():
    assert strings_under_secret_looking_keys(helm_values()) == []


def test_the_secret_scan_finds_an_inlined_password():
    planted = {"postgresql": {"postgresqlPassword": "hunter2"},
               "env": [{"name": "PGPASSWORD", "value": "hunter2"}]}
    assert len(strings_under_secret_looking_keys(planted)) == 2


# --- the code location and its runs -----------------------------------------------------------


def test_the_code_location_serves_our_definitions_from_our_image():
    code = user_deployment()
    module = pyproject()["tool"]["dagster"]["module_name"]
    assert code["dagsterApiGrpcArgs"] == ["-m", module]
    image = code["image"]
    assert {c["image"] for _, _, c in containers()} == {f"{image['repository']}:{image['tag']}"}


def test_the_code_location_and_its_runs_get_the_config_map_and_the_secret():
    code = user_deployment()
    launcher = helm_values()["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    for holder in (code, launcher["config"]["k8sRunLauncher"]):
        assert holder["envConfigMaps"] == [{"name": CONFIG_MAP}]
        assert holder["envSecrets"] == [{"name": SECRET}]
    assert code["includeConfigInLaunchedRuns"]["enabled"] is True


def test_the_code_location_leaves_streaming_to_the_worker_deployments():
    env = {item["name"]: item["value"] for item in user_deployment()["env"]}
    assert env["RAG_STREAM_WORKERS"] == "external"
    if "RAG_STREAM_WORKERS" not in product_string_literals():
        pytest.skip("RAG_STREAM_WORKERS is read nowhere yet (issue 20, stream workers): the "
                    "code location would still run its own workers beside the Deployments")


def test_the_code_location_probes_are_dagsters_grpc_health_check():
    code = user_deployment()
    for kind in ("readinessProbe", "livenessProbe"):
        command = code[kind]["exec"]["command"]
        assert command == ["dagster", "api", "grpc-health-check", "-p", str(code["port"])]
    exists = subprocess.run([sys.executable, "-m", "dagster", *command[1:3], "--help"],
                            capture_output=True, text=True, timeout=120)
    assert exists.returncode == 0, exists.stderr


def test_the_code_location_and_runs_run_as_the_image_user_without_privileges():
    code = user_deployment()
    launcher = helm_values()["runLauncher"]["config"]["k8sRunLauncher"]
    assert code["podSecurityContext"]["runAsNonRoot"] is True
    assert code["podSecurityContext"]["runAsUser"] == image_user_id()
    assert launcher["securityContext"]["runAsUser"] == image_user_id()
    for context in (code["securityContext"], launcher["securityContext"]):
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}


def test_the_instance_is_mounted_where_the_image_looks_for_it():
    image_home = dockerfile_stages()[-1].env()["DAGSTER_HOME"]
    assert helm_values()["global"]["dagsterHome"] == image_home


def test_a_failed_run_is_retried_by_dagster_not_by_its_job():
    launcher = helm_values()["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["runK8sConfig"]["jobSpecConfig"]["backoffLimit"] == 0
    assert helm_values()["dagsterDaemon"]["runRetries"]["enabled"] is True
