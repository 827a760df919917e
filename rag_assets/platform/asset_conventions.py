"""Conventions every asset of the product shares, so the Dagster UI reads the same everywhere."""

from __future__ import annotations

from dagster import TableColumn, TableSchema

OWNER = "team:data-platform"


def table_schema(*columns: tuple[str, str, str]) -> TableSchema:
    """Column schema metadata from (name, type, description) triples."""
    return TableSchema(columns=[TableColumn(name, kind, description=text) for name, kind, text in columns])
