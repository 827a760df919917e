"""The Kafka sensor of the Customer 360 pipeline (`cdc.<system>.<table>` → `customers_cdc`)."""

from __future__ import annotations

from sensors.kafka_ranges import KafkaRangeSensorSpec, build_kafka_range_sensor

cdc_sensor = build_kafka_range_sensor(KafkaRangeSensorSpec(
    name="cdc_sensor",
    job_name="customers_cdc",
    root_asset="source_records",
    topic_pattern=r"cdc\.[^.]+\.[^.]+",
    downstream_config={"identity_graph": {"rebuild": False}, "customer_profiles": {"rebuild": False}},
    description="Requests a run of the Customer 360 assets for each new offset range of the "
                "`cdc.<system>.<table>` topics.",
))
