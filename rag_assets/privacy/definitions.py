"""The privacy assets, jobs and schedule (their group stays `customers`, as users know it)."""

from __future__ import annotations

from dagster import Definitions

from rag_assets.privacy.assets import (
    customer_erasure_job,
    customer_erasures,
    dead_letter_payload_retention,
    dead_letter_retention_job,
    dead_letter_retention_schedule,
)

defs = Definitions(assets=[customer_erasures, dead_letter_payload_retention],
                   jobs=[customer_erasure_job, dead_letter_retention_job],
                   schedules=[dead_letter_retention_schedule])
