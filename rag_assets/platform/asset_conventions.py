"""Conventions every asset of the product shares, so the Dagster UI reads the same everywhere."""

from __future__ import annotations

from datetime import timedelta

from dagster import FreshnessPolicy, TableColumn, TableSchema

OWNER = "team:data-platform"

# Assets the streaming sensors keep current: with sources as busy as the demo's they are
# materialised every few seconds, so a quarter of an hour without one means the pipeline (or
# its source) has stopped. A source that is really quiet shows WARN as well — by design: the
# lag checks tell "nothing to do" (green) from "falling behind" (red).
STREAMED = FreshnessPolicy.time_window(fail_window=timedelta(hours=1),
                                       warn_window=timedelta(minutes=15))
# Assets on a schedule or a cron condition: two periods late warns, six fail.
HOURLY = FreshnessPolicy.time_window(fail_window=timedelta(hours=6),
                                     warn_window=timedelta(hours=2))
QUARTER_HOURLY = FreshnessPolicy.time_window(fail_window=timedelta(hours=2),
                                             warn_window=timedelta(minutes=45))


def table_schema(*columns: tuple[str, str, str]) -> TableSchema:
    """Column schema metadata from (name, type, description) triples."""
    return TableSchema(columns=[TableColumn(name, kind, description=text) for name, kind, text in columns])
