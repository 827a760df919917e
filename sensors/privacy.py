"""The Kafka sensor of erasure requests (`privacy.erasure` → `customer_erasure`)."""

from __future__ import annotations

from sensors.kafka_ranges import KafkaRangeSensorSpec, build_kafka_range_sensor

erasure_sensor = build_kafka_range_sensor(KafkaRangeSensorSpec(
    name="erasure_sensor",
    job_name="customer_erasure",
    root_asset="customer_erasures",
    topic_pattern=r"privacy\.erasure",
    max_per_partition=500,
    description="Requests a run of `customer_erasures` for each new offset range of the "
                "`privacy.erasure` topic (right to be forgotten).",
))
