"""The customers group: assets, the job the CDC sensor runs, and checks."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job

from rag_assets.customers.assets import customer_profiles, identity_graph, source_records
from rag_assets.customers.checks import customer_checks

customers_cdc_job = define_asset_job(
    "customers_cdc",
    selection=AssetSelection.assets(source_records).downstream().materializable(),
    description="Applies new CDC offset ranges and updates everything downstream of them.",
)

defs = Definitions(
    assets=[source_records, identity_graph, customer_profiles],
    asset_checks=customer_checks,
    jobs=[customers_cdc_job],
)
