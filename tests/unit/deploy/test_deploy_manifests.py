"""deploy/k8s: every object valid against the Kubernetes OpenAPI schemas (strict: no unknown
field), and the manifests agreeing with the product — the variables it reads, its commands, its
HTTP routes — and with each other."""

from __future__ import annotations

import asyncio
import ipaddress

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from infra.settings import ADMIN_PASSWORD_SECRET, SECRET_NAMES, InfraSettings, connection_env
from rag_assets.cli import build_parser
from tests.unit.deploy.deploy_files import (
    K8S,
    config_map,
    containers,
    dockerfile_stages,
    image_user_id,
    manifests,
    objects,
    one,
    product_string_literals,
    quantity,
    required_env_vars,
    secret_template,
)

# The oldest Kubernetes minor still in upstream or common managed support, and the newest the
# schema package knows.
KUBERNETES_VERSIONS = ("1.31.0", latest_version())
CONFIG_MAP, SECRET = "rag-assets-config", "rag-assets-secrets"
SECRETISH = ("PASSWORD", "SECRET", "TOKEN", "_KEY")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("file,doc", manifests(),
                         ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in manifests()])
def test_every_object_is_valid_kubernetes(file, doc, version):
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_manifests_are_the_ones_kustomize_applies():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted({file for file, _ in manifests()})
    [image] = kustomization["images"]
    assert {c["image"] for _, _, c in containers()} == {f"{image['newName']}:{image['newTag']}"}


# --- the settings every pod gets ------------------------------------------------------------


def test_every_workload_reads_the_config_map_and_the_secret():
    for name, _, container in containers():
        sources = {(kind, ref["name"]) for entry in container["envFrom"]
                   for kind, ref in entry.items()}
        assert sources == {("configMapRef", CONFIG_MAP), ("secretRef", SECRET)}, name


def test_every_required_setting_is_provided():
    """A resource's EnvVar left unset fails every run and worker that uses it."""
    provided = set(config_map()) | set(secret_template())
    assert required_env_vars() - provided == set()


def test_no_connection_variable_is_left_to_the_local_fallback(tmp_path):
    """CLI commands (retrieval-serve, retrieval-clients) fill every unset variable of
    `connection_env` with the local demo services' value — 127.0.0.1 — so a pod must set them
    all, in the ConfigMap, the Secret or the image."""
    image_env = dockerfile_stages()[-1].env()
    provided = set(config_map()) | set(secret_template()) | set(image_env)
    settings = InfraSettings(tmp_path, 1, 2, 3, 4, 5, 6)
    assert set(connection_env(settings)) - provided == set()
    assert image_env["RAG_STATE_DIR"].startswith("/tmp/")  # writable: an emptyDir


def test_the_secret_template_holds_every_secret_and_no_value(tmp_path):
    template = secret_template()
    # Every secret the product reads; the local servers' admin passwords are not among them.
    exported = set(connection_env(InfraSettings(tmp_path, 1, 2, 3, 4, 5, 6)))
    assert set(SECRET_NAMES) & exported <= set(template)
    for admin_password in (ADMIN_PASSWORD_SECRET, "RAG_KAFKA_ADMIN_PASSWORD"):
        assert admin_password not in exported | set(template)
    assert all(value == "" for value in template.values()), "the template must hold no value"
    for name in set(template) - set(SECRET_NAMES):
        assert any(word in name for word in SECRETISH), f"{name} is not a secret"


def test_no_pod_gets_the_postgres_superuser_password():
    """The superuser's password is the local infra's alone: in production an operator keeps
    it (docs/operations.md, "Least privilege"); pods log in as PGUSER."""
    assert ADMIN_PASSWORD_SECRET not in secret_template()
    assert ADMIN_PASSWORD_SECRET not in config_map()


def test_the_config_map_holds_no_secret():
    for name in config_map():
        assert name not in SECRET_NAMES and not any(word in name for word in SECRETISH), name


def test_every_variable_set_is_one_the_product_reads():
    """A misspelt name would be silently ignored and its default used."""
    literals = product_string_literals()
    for name in set(config_map()) | set(secret_template()):
        assert name in literals, f"{name} is read nowhere in the product"
    for name, _, container in containers():
        for variable in container.get("env", []):
            assert variable["name"] in literals, (name, variable["name"])


def test_kafka_is_reached_with_a_login_over_tls_and_its_password_is_a_secret():
    config = config_map()
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert {"KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME"} <= set(config)
    assert "KAFKA_SASL_PASSWORD" in secret_template()


def test_lancedb_is_on_s3_so_every_pod_shares_the_table():
    assert config_map()["LANCEDB_URI"].startswith("s3://")


# --- pods -------------------------------------------------------------------------------------


def test_every_container_runs_as_the_image_user_without_privileges():
    for name, spec, container in containers():
        pod, own = spec.get("securityContext", {}), container["securityContext"]
        assert own.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, name
        assert own.get("runAsUser", pod.get("runAsUser")) == image_user_id(), name
        assert own["allowPrivilegeEscalation"] is False, name
        assert own["capabilities"]["drop"] == ["ALL"] and "add" not in own["capabilities"], name
        assert own["readOnlyRootFilesystem"] is True, name
        assert not spec.get("automountServiceAccountToken", True), name


def test_a_read_only_root_leaves_the_image_its_writable_directories():
    """The image sends every write to /tmp (RAG_STATE_DIR, MPLCONFIGDIR); /tmp is a volume."""
    writable = {value for value in dockerfile_stages()[-1].env().values()
                if value.startswith("/tmp/")}
    assert writable
    for name, spec, container in containers():
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name


def test_every_container_has_requests_within_limits():
    for name, _, container in containers():
        resources = container["resources"]
        for resource in ("cpu", "memory"):
            request = quantity(resources["requests"][resource])
            assert 0 < request <= quantity(resources["limits"][resource]), (name, resource)


def test_one_image_for_every_role():
    [image] = {c["image"] for _, _, c in containers()}
    assert not image.endswith(":latest") and ":" in image


# --- stream workers ---------------------------------------------------------------------------


def worker_sources() -> dict[str, dict]:
    workers = [d for d in objects("Deployment")
               if d["metadata"]["labels"]["app.kubernetes.io/component"] == "stream-worker"]
    found = {}
    for deployment in workers:
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        command = container["command"]
        assert command[:3] == ["rag-assets", "stream", "--source"] and len(command) == 4
        found[command[3]] = deployment
    return found


def test_one_worker_deployment_per_source_and_three_cdc_workers():
    sources = worker_sources()
    assert set(sources) == {"cdc", "feedback", "documents"}
    assert sources["cdc"]["spec"]["replicas"] == 3
    for source, deployment in sources.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert labels["rag-assets/source"] == source


def test_the_stream_command_exists_in_the_cli():
    commands = build_parser()._subparsers._group_actions[0].choices
    if "stream" not in commands:
        pytest.skip("`rag-assets stream` is not built yet (issue 20, stream workers); the "
                    "worker Deployments cannot start until it is")
    for source in worker_sources():
        args = build_parser().parse_args(["stream", "--source", source])
        assert args.command == "stream"


def test_the_disruption_budget_covers_exactly_the_cdc_workers():
    [budget] = objects("PodDisruptionBudget")
    selector = budget["spec"]["selector"]["matchLabels"]
    covered = [source for source, deployment in worker_sources().items()
               if selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()]
    assert covered == ["cdc"]
    assert budget["spec"]["maxUnavailable"] < worker_sources()["cdc"]["spec"]["replicas"]


def test_workers_are_given_time_to_finish_their_transaction():
    for source, deployment in worker_sources().items():
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


# --- retrieval endpoint -----------------------------------------------------------------------


def retrieval() -> tuple[dict, dict]:
    deployment = one("Deployment", "rag-retrieval")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container


def test_the_retrieval_command_is_closed_and_reachable():
    _, container = retrieval()
    assert container["command"][:2] == ["rag-assets", "retrieval-serve"]
    args = build_parser().parse_args(container["command"][1:])
    assert not args.insecure_no_auth
    assert not ipaddress.ip_address(args.host).is_loopback  # reachable from the Service
    [port] = container["ports"]
    assert port["containerPort"] == args.port


def test_the_retrieval_certificate_comes_from_a_tls_secret():
    deployment, container = retrieval()
    env = {v["name"]: v["value"] for v in container["env"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    for variable in ("RAG_RETRIEVAL_TLS_CERT", "RAG_RETRIEVAL_TLS_KEY"):
        [mount] = [m for m in container["volumeMounts"]
                   if env[variable].startswith(m["mountPath"] + "/")]
        assert mount["readOnly"] is True
        assert volumes[mount["name"]]["secret"]["secretName"] == "rag-retrieval-tls"


def asgi_get(app, path: str) -> int:
    """The status of a GET of `path` without credentials, straight through the ASGI app."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "https", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [], "server": ("rag-retrieval", 443),
             "client": ("10.0.0.1", 5000)}
    asyncio.run(app(scope, receive, send))
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


def test_the_retrieval_probes_hit_the_open_health_route_over_https():
    from rag_assets.retrieval.http import Access, create_app

    deployment, container = retrieval()
    refuse_all = Access(client_of=lambda token: None, audit=None, limiter=None, gate=None)
    app = create_app(service=None, access=refuse_all)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container[kind]["httpGet"]
        assert probe["scheme"] == "HTTPS"  # the server speaks TLS only
        assert probe["port"] in ports
        assert asgi_get(app, probe["path"]) == 200, kind
    assert asgi_get(app, "/v1/context") == 401  # the probe path is not a guessed one


def test_the_retrieval_service_targets_the_endpoint():
    deployment, container = retrieval()
    service = one("Service", "rag-retrieval")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}


def test_only_the_endpoint_has_probes():
    """The workers serve nothing to probe; a probe there would be an invented one."""
    for name, _, container in containers():
        probes = {k for k in container if k.endswith("Probe")}
        assert probes == (set() if name != "rag-retrieval" else
                          {"startupProbe", "readinessProbe", "livenessProbe"}), name


def test_the_manifests_name_no_namespace():
    """Installed with `-n`, like the chart."""
    assert all("namespace" not in doc["metadata"] for _, doc in manifests())
