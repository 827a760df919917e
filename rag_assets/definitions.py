"""The Dagster code location: every asset, check, sensor and resource of the product."""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from rag_assets.catalogue import active_catalogue
from rag_assets.catalogue.assets import source_specs
from rag_assets.customers import definitions as customers
from rag_assets.feedback import definitions as feedback
from rag_assets.knowledge import definitions as knowledge
from rag_assets.privacy import definitions as privacy
from rag_assets.retrieval import definitions as retrieval
from resources.defaults import production_resources
from sensors.definitions import all_sensors

# A broken source catalogue stops the code location here (or at the first module that reads
# it), with its file:line messages, rather than half-configured at the first event.
defs = Definitions.merge(
    Definitions(assets=source_specs(active_catalogue())),
    customers.defs,
    privacy.defs,
    feedback.defs,
    knowledge.defs,
    retrieval.defs,
    # Every run's steps in the run's own process: a step of these jobs takes a second or less,
    # a step process of its own ~20 s to start (imports) on a busy 2-core machine — a runs-mode
    # deployment under load spent most of each run starting step processes. Runs, not steps,
    # are what spreads over machines (docs/scaling.md).
    Definitions(sensors=all_sensors, resources=production_resources(),
                executor=in_process_executor),
)
