"""The Kafka sensor of the feedback analytics pipeline (`app.feedback` → `feedback_stream`)."""

from __future__ import annotations

from sensors.kafka_ranges import KafkaRangeSensorSpec, build_kafka_range_sensor

feedback_sensor = build_kafka_range_sensor(KafkaRangeSensorSpec(
    name="feedback_sensor",
    job_name="feedback_stream",
    root_asset="conversation_log",
    topic_pattern=r"app\.feedback",
    # Same content as rag_assets.feedback.definitions.STREAM_DOWNSTREAM_CONFIG; sensors name
    # assets by key and do not import the asset modules.
    downstream_config={"feedback_scored": {"rebuild": False}, "kpi_hourly": {"rebuild": False},
                       "kpi_daily": {"rebuild": False}},
    description="Requests a run of the feedback analytics assets (lake, scoring, KPI tables) "
                "for each new offset range of the `app.feedback` topic.",
))
