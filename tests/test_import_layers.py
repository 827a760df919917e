"""The import layers of docs/architecture.md, checked on the source (no import is executed).

    platform  rag_assets/platform and the adapters to outside systems (resources.kafka,
              postgres, s3, lancedb, env)
    domain    rag_assets/<domain>, resources.embedder and resources.sentiment; among the
              domains, privacy (erasure) sits above customers and feedback: it imports them,
              they never import it
    wiring    resources/defaults.py (the deployment's resources, from the environment)
    sensors   sensors/
    top       rag_assets/definitions.py, the command line (rag_assets/cli.py and each domain's
              cli module) and the demo's runner: they may start the local services (infra/)

Each layer imports only the layers above it in this list (infra/ may use the platform). Plus: no
module imports a private name (`_x`) of another package, and the modules' top-level imports form
no cycle. An exception is a reviewed entry in `KNOWN_CROSSINGS` with its reason; an entry that
no longer matches an import fails, so the list can only shrink.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.settings import REPO_ROOT

PACKAGES = ("rag_assets", "resources", "sensors", "infra")
ADAPTERS = {"resources.kafka", "resources.postgres", "resources.s3", "resources.lancedb",
            "resources.env"}
DOMAINS = ("catalogue", "customers", "feedback", "knowledge", "retrieval", "demo", "privacy")
# Domains that may import only the domains below them in this map (the others are checked for
# cycles only): erasure reaches into customers and feedback, which know nothing of it.
DOMAINS_BELOW = {"privacy": {"catalogue", "customers", "feedback", "knowledge"},
                 "customers": {"catalogue", "knowledge"},
                 "feedback": {"catalogue", "customers"}}
DOMAIN_RESOURCES = {"resources.embedder", "resources.sentiment"}

TOP = {"rag_assets.definitions", "rag_assets.cli", "rag_assets.demo.run"}
RANKS = {"platform": 0, "domain": 1, "wiring": 2, "sensors": 3, "top": 4}

# (importer, imported) crossings of a layer rule kept on purpose, with the reason.
KNOWN_CROSSINGS = {
    # The retrieval service built from the deployment's settings, for the CLI and the server.
    ("rag_assets.retrieval.context", "resources.defaults"),
    # `publish_demo_data` defaults to the deployment's Kafka and S3 when not given any.
    ("rag_assets.demo.publisher", "resources.defaults"),
}

# Modules below the top layer that import project code inside functions, and why.
DEFERRED_IMPORTS = {
    # Builds the service from the deployment's settings: Dagster's resources load only then.
    "rag_assets.retrieval.context": "service_from_env is the service's entry point",
    # Each backend's model stack (ONNX Runtime, OpenVINO, the jars) loads only when chosen.
    "resources.embedder": "optional backends",
    # Defaults to the deployment's Kafka and S3 only when the caller gives none.
    "rag_assets.demo.publisher": "the deployment's resources as a default",
}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str  # a module, or module.name for `from module import name`
    names: tuple[str, ...]
    top_level: bool  # at module level, not inside a function (nor under TYPE_CHECKING)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES
            for path in sorted((REPO_ROOT / package).rglob("*.py"))}


def _imports_of(name: str, tree: ast.Module) -> Iterator[Import]:
    top_level_nodes = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        top = id(node) in top_level_nodes
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, (), top)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield Import(name, node.module, tuple(a.name for a in node.names), top)


def project_imports() -> list[Import]:
    found = []
    for name, path in source_modules().items():
        tree = ast.parse(path.read_text(), str(path))
        found += [i for i in _imports_of(name, tree) if i.imported.split(".")[0] in PACKAGES]
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    if module in ADAPTERS or parts[:2] == ["rag_assets", "platform"]:
        return "platform"
    if module in TOP or parts[-1] in ("cli", "cli_commands"):
        return "top"
    if module in DOMAIN_RESOURCES or (parts[0] == "rag_assets" and len(parts) > 1
                                      and parts[1] in DOMAINS):
        return "domain"
    if parts[0] in ("sensors", "infra"):
        return parts[0]
    return "wiring"


def target_module(imp: Import, modules: dict[str, Path]) -> str:
    """The module an import reaches (`from package import module` names the module)."""
    for name in imp.names:
        if f"{imp.imported}.{name}" in modules:
            return f"{imp.imported}.{name}"
    return imp.imported


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return project_imports()


def _allowed(importer: str, target: str) -> bool:
    if layer(target) == "infra":  # the local services: started by the top layer only
        return layer(importer) in ("top", "infra")
    if layer(importer) == "infra":
        return layer(target) == "platform"
    return RANKS[layer(target)] <= RANKS[layer(importer)]


def test_each_layer_imports_only_the_layers_below_it(imports):
    modules = source_modules()
    crossings = {(imp.importer, target_module(imp, modules)) for imp in imports
                 if not _allowed(imp.importer, target_module(imp, modules))}
    assert crossings - KNOWN_CROSSINGS == set()
    assert KNOWN_CROSSINGS - crossings == set(), "a reviewed crossing is gone: remove its entry"


def domain_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if layer(module) == "domain" and parts[0] == "rag_assets" else None


def test_a_domain_imports_only_the_domains_below_it(imports):
    modules = source_modules()
    crossings = set()
    for imp in imports:
        importer, target = domain_of(imp.importer), domain_of(target_module(imp, modules))
        if importer in DOMAINS_BELOW and target not in (None, importer) \
                and target not in DOMAINS_BELOW[importer]:
            crossings.add((imp.importer, target_module(imp, modules)))
    assert crossings == set()


def test_only_the_definitions_and_the_cli_import_sensors(imports):
    importers = {imp.importer for imp in imports if imp.imported.split(".")[0] == "sensors"}
    assert {m for m in importers if not m.startswith("sensors")} == {
        "rag_assets.definitions", "rag_assets.cli"}


def test_no_private_name_is_imported_from_another_package(imports):
    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    reached = {(imp.importer, f"{imp.imported}.{name}") for imp in imports for name in imp.names
               if name.startswith("_") and package(imp.importer) != package(imp.imported)}
    assert reached == set()


def test_project_code_is_imported_inside_functions_only_for_a_reason(imports):
    deferred = {imp.importer for imp in imports
                if not imp.top_level and layer(imp.importer) != "top"}
    assert deferred - set(DEFERRED_IMPORTS) == set()
    assert set(DEFERRED_IMPORTS) - deferred == set(), "a listed module imports at the top now"


def test_top_level_imports_form_no_cycle(imports):
    modules = source_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for imp in imports:
        target = target_module(imp, modules)
        if imp.top_level and target in modules and target != imp.importer:
            graph[imp.importer].add(target)
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], path[len(path):] = "open", [node]
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None
