"""The Dagster code location: every asset, check, sensor and resource of the product."""

from __future__ import annotations

from dagster import Definitions

from rag_assets.customers import definitions as customers
from rag_assets.customers import erasure_assets
from rag_assets.feedback import definitions as feedback
from rag_assets.knowledge import definitions as knowledge
from resources.defaults import production_resources
from sensors.definitions import all_sensors

defs = Definitions.merge(
    customers.defs,
    erasure_assets.erasure_defs,
    feedback.defs,
    knowledge.defs,
    Definitions(sensors=all_sensors, resources=production_resources()),
)
