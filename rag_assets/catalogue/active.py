"""The catalogue in force: the file `RAG_SOURCE_CATALOGUE` names, else the demo's.

Loaded once per path (and again when the file changes), so the pure functions that default to
it can ask for it per batch without re-reading the file.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from rag_assets.catalogue.loader import load_catalogue
from rag_assets.catalogue.model import Catalogue

CATALOGUE_ENV = "RAG_SOURCE_CATALOGUE"
DEMO_CATALOGUE = Path(__file__).resolve().parent.parent / "demo" / "catalogue.yaml"


def catalogue_path() -> str:
    return os.environ.get(CATALOGUE_ENV) or str(DEMO_CATALOGUE)


def active_catalogue() -> Catalogue:
    """The catalogue in force; `CatalogueError` when its file is not usable."""
    path = catalogue_path()
    try:
        modified = os.stat(path).st_mtime_ns
    except OSError:
        modified = None  # load_catalogue names the problem
    return _load(path, modified)


@lru_cache(maxsize=8)
def _load(path: str, modified: int | None) -> Catalogue:
    return load_catalogue(path)
