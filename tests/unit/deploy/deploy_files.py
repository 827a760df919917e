"""The files of deploy/, read the way their tools read them, for the deployment tests."""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
SECRET_TEMPLATE = K8S / "secrets.env.template"
PRODUCT_DIRS = ("rag_assets", "resources", "sensors", "infra")


@cache
def manifests() -> list[tuple[str, dict]]:
    """(file name, document) of every Kubernetes object under deploy/k8s (not kustomization)."""
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def objects(kind: str) -> list[dict]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def one(kind: str, name: str) -> dict:
    [found] = [doc for doc in objects(kind) if doc["metadata"]["name"] == name]
    return found


@cache
def helm_values() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text())


def user_deployment() -> dict:
    [deployment] = helm_values()["dagster-user-deployments"]["deployments"]
    return deployment


def config_map() -> dict[str, str]:
    [found] = objects("ConfigMap")
    return found["data"]


def secret_template() -> dict[str, str]:
    """The env file `kubectl create secret generic --from-env-file` reads: NAME=value lines."""
    pairs = {}
    for line in SECRET_TEMPLATE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value
    return pairs


@cache
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        values = {}
        for keyword, args in self.instructions:
            if keyword == "ENV":
                values.update(pair.split("=", 1) for pair in shlex.split(args))
        return values

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@cache
def dockerfile_stages() -> list[Stage]:
    """The Dockerfile's stages: continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if raw.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        logical.append(pending + raw)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.strip().partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            base, *rest = args.split()
            stages.append(Stage(base, rest[1] if len(rest) == 2 and rest[0].upper() == "AS"
                                else None))
        else:
            stages[-1].instructions.append((keyword, args))
    return stages


def product_sources() -> list[Path]:
    return [path for folder in PRODUCT_DIRS for path in sorted((REPO / folder).rglob("*.py"))]


@cache
def product_string_literals() -> frozenset[str]:
    """Every string constant in the product's code: the names of the variables it reads are
    among them (as literals or as constants such as TOKEN_ENV)."""
    found = set()
    for path in product_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return frozenset(found)


@cache
def required_env_vars() -> frozenset[str]:
    """The variables read through `EnvVar("X")` / `EnvVar.int("X")` in resources/: Dagster
    fails a run, sensor or resource whose EnvVar is unset."""
    names = set()
    for path in sorted((REPO / "resources").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and node.args
                    and isinstance(node.args[0], ast.Constant)):
                continue
            func = node.func
            if (isinstance(func, ast.Name) and func.id == "EnvVar") or (
                    isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                    and func.value.id == "EnvVar"):
                names.add(node.args[0].value)
    return frozenset(names)


def pod_specs() -> list[tuple[str, dict]]:
    """(name, pod spec) of every workload in deploy/k8s."""
    return [(doc["metadata"]["name"], doc["spec"]["template"]["spec"])
            for _, doc in manifests() if doc["kind"] in ("Deployment", "StatefulSet", "Job")]


def containers() -> list[tuple[str, dict, dict]]:
    """(workload name, pod spec, container) of every container in deploy/k8s."""
    return [(name, spec, container) for name, spec in pod_specs()
            for container in spec["containers"] + spec.get("initContainers", [])]


def image_user_id() -> int:
    user = dockerfile_stages()[-1].all("USER")[-1]
    return int(user.split(":")[0])


QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti)?$")
_FACTORS = {None: 1, "m": 0.001, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value: str | int) -> float:
    match = QUANTITY.match(str(value))
    assert match, f"unparsed quantity {value!r}"
    return float(match.group(1)) * _FACTORS[match.group(2)]
