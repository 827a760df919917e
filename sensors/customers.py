"""The sensors of the Customer 360 pipeline (the CDC topics of the source catalogue): a streaming sensor that
applies changes in a worker its ticks keep alive, and the plain one that requests a
`customers_cdc` run per offset range (see `sensors/mode.py` for which runs by default)."""

from __future__ import annotations

import os

from rag_assets.customers.cdc_apply import cdc_topic_pattern
from rag_assets.customers.checks import cdc_lag_report
from rag_assets.customers.definitions import customers_cdc_job
from rag_assets.customers.streaming import CdcMicroBatches
from rag_assets.platform.micro_batch import MicroBatchSession
from sensors.kafka_ranges import KafkaRangeSensorSpec, build_kafka_range_sensor
from sensors.mode import streaming
from sensors.streaming import StreamingSensorSpec, streaming_sensor

# The most offsets of one partition a run takes. Only a backlog fills it (a run takes what has
# arrived), and there larger runs catch up sooner: a run relinks each changed record and rebuilds
# each affected profile once, however many of its changes the run holds. 1,000,000 events on 16
# partitions: 1,130 events/s at 5,000 per partition, 1,813 at 20,000, 3,961 in one run at
# 100,000, whose process peaked at 1.9 GB (docs/benchmarks.md).
DEFAULT_CDC_MAX_PER_PARTITION = 100_000


def cdc_max_per_partition(environ=os.environ) -> int:
    """`RAG_CDC_MAX_PER_PARTITION`, a positive number of offsets."""
    raw = environ.get("RAG_CDC_MAX_PER_PARTITION", str(DEFAULT_CDC_MAX_PER_PARTITION))
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(f"RAG_CDC_MAX_PER_PARTITION must be a positive whole number, not {raw!r}")
    return int(raw)


CDC_RANGES = KafkaRangeSensorSpec(
    name="cdc_sensor",
    job_name=customers_cdc_job.name,
    root_asset="source_records",
    topic_pattern=cdc_topic_pattern,
    max_per_partition=cdc_max_per_partition(),
    downstream_config={"identity_graph": {"rebuild": False}, "customer_profiles": {"rebuild": False}},
    description="Requests a run of the Customer 360 assets for each new offset range of the "
                "CDC topics of the source catalogue.",
    running=not streaming(),
)
cdc_sensor = build_kafka_range_sensor(CDC_RANGES)


def _open_cdc_batches(resources: dict, session: MicroBatchSession) -> CdcMicroBatches:
    return CdcMicroBatches(session, resources["kafka"], resources["postgres"])


CDC_STREAM = StreamingSensorSpec(
    name="cdc_stream",
    feeds=customers_cdc_job.selection,
    description="Streams CDC events into source records, the identity graph and the profiles "
                "in a worker its ticks keep alive (no run), exactly once through the offset "
                "ledger; each tick reports what it applied as materialisations with their "
                "offset ranges.",
    open_batches=_open_cdc_batches,
    resource_keys=("kafka", "postgres"),
    lag_check=("source_records", "cdc_lag"),
    source_lag=lambda resources: cdc_lag_report(resources["kafka"], resources["postgres"]),
)


cdc_stream = streaming_sensor(CDC_STREAM, running=streaming())
