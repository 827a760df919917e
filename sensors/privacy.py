"""The Kafka sensor of erasure requests (`privacy.erasure` → `customer_erasure`)."""

from __future__ import annotations

from rag_assets.privacy.assets import ERASURE_JOB, ERASURE_TOPIC_PATTERN
from sensors.kafka_ranges import KafkaRangeSensorSpec, build_kafka_range_sensor

ERASURE_RANGES = KafkaRangeSensorSpec(
    name="erasure_sensor",
    job_name=ERASURE_JOB,
    root_asset="customer_erasures",
    topic_pattern=ERASURE_TOPIC_PATTERN,
    max_per_partition=500,
    description="Requests a run of `customer_erasures` for each new offset range of the "
                "`privacy.erasure` topic (right to be forgotten).",
)
erasure_sensor = build_kafka_range_sensor(ERASURE_RANGES)
