"""The retrieval call in the lineage: what `RetrievalService.context()` reads.

The service is not materialised by Dagster: it reads the profiles and the chunks as the
pipelines write them, on every call (`rag-assets context`, `GET /v1/context`). It is declared
as an external asset downstream of what it reads, so the UI shows where the assistant's context
comes from and that the customers and knowledge groups meet there.
"""

from __future__ import annotations

from dagster import AssetSpec, Definitions, MetadataValue

from rag_assets.customers.assets import customer_profiles
from rag_assets.knowledge.assets import document_chunks
from rag_assets.platform.asset_conventions import OWNER

retrieval_context = AssetSpec(
    key="retrieval_context",
    deps=[customer_profiles, document_chunks],
    group_name="retrieval",
    kinds={"python", "api"},
    owners=[OWNER],
    description="The context bundle for a prompt: the customer's unified profile and the top-k "
                "knowledge chunks for the question, each with its provenance and age. Read live "
                "by `rag-assets context` and the HTTP endpoint (GET /v1/context); never "
                "materialised.",
    metadata={"entry_points": MetadataValue.md(
        "* `rag-assets context --customer REF --question TEXT`\n"
        "* `rag-assets retrieval-serve` → `GET /v1/context`\n"
        "* `rag_assets.retrieval.context.RetrievalService.context()`")},
)

defs = Definitions(assets=[retrieval_context])
