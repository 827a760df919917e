"""The Dagster code location: every asset, check, sensor and resource of the product."""

from __future__ import annotations

from dagster import Definitions

from resources.defaults import production_resources

defs = Definitions(
    resources=production_resources(),
)
