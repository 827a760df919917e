"""The feedback group: assets, checks, the job the feedback sensor runs.

The fine-tuning export is not in the stream job: it runs on the declarative automation clock of
its asset (`AutomationCondition.on_cron`), evaluated by the automation sensor.
"""

from __future__ import annotations

from dagster import (
    AssetSelection,
    Definitions,
    define_asset_job,
)

from rag_assets.feedback.assets import (
    conversation_log,
    feedback_assets,
    feedback_scored,
    finetune_dataset,
    kpi_daily,
    kpi_hourly,
)
from rag_assets.feedback.checks import feedback_checks

# What the sensor's run config sets for the downstream assets of `feedback_stream`.
STREAM_DOWNSTREAM_CONFIG = {
    "feedback_scored": {"rebuild": False},
    "kpi_hourly": {"rebuild": False},
    "kpi_daily": {"rebuild": False},
}

feedback_stream_job = define_asset_job(
    "feedback_stream",
    selection=AssetSelection.assets(conversation_log, feedback_scored, kpi_hourly, kpi_daily),
    description="Lands new `app.feedback` offset ranges in the lake, scores the new turns and "
                "recomputes the KPI windows they touched.",
)

feedback_finetune_job = define_asset_job(
    "feedback_finetune_export",
    selection=AssetSelection.assets(finetune_dataset),
    description="Exports a new version of the fine-tuning dataset from the conversation lake.",
)

defs = Definitions(
    assets=feedback_assets,
    asset_checks=feedback_checks,
    jobs=[feedback_stream_job, feedback_finetune_job],
)
