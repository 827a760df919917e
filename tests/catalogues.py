"""Catalogue files for tests: the shipped demo catalogue with more tables, written where a
test points `RAG_SOURCE_CATALOGUE`."""

from __future__ import annotations

import textwrap
from pathlib import Path

from rag_assets.catalogue.active import CATALOGUE_ENV, DEMO_CATALOGUE

# The demo's audit log: a table the shipped catalogue does not name.
AUDIT_LOG = """\
- system: crm
  table: audit_log
  topics: [cdc.crm.audit_log]
  identity:
    email: [email]
"""


def demo_catalogue_with(directory: Path, entries: str) -> Path:
    """A copy of the demo catalogue whose `sources:` also list `entries` (YAML list items)."""
    text = DEMO_CATALOGUE.read_text(encoding="utf-8")
    assert "\nsources:\n" in text
    extended = text.replace("\nsources:\n", "\nsources:\n" + textwrap.indent(entries, "  "), 1)
    path = directory / "catalogue.yaml"
    path.write_text(extended, encoding="utf-8")
    return path


def use_catalogue(monkeypatch, path: Path) -> None:
    monkeypatch.setenv(CATALOGUE_ENV, str(path))
