"""The Dagster code location: every asset, check, sensor and resource of the product."""

from __future__ import annotations

from dagster import Definitions

from rag_assets.customers.definitions import defs as customers_defs
from resources.defaults import production_resources
from sensors.definitions import all_sensors

defs = Definitions.merge(
    customers_defs,
    Definitions(sensors=all_sensors, resources=production_resources()),
)
