"""The sensors of the feedback analytics pipeline (`app.feedback`): a streaming sensor that
applies events inside its ticks, and the plain one that requests a `feedback_stream` run per
offset range (see `sensors/mode.py` for which runs by default)."""

from __future__ import annotations


from rag_assets.feedback import ingest
from rag_assets.feedback.checks import feedback_lag_report
from rag_assets.feedback.definitions import STREAM_DOWNSTREAM_CONFIG, feedback_stream_job
from rag_assets.feedback.streaming import FeedbackMicroBatches
from rag_assets.platform.micro_batch import MicroBatchSession
from sensors.kafka_ranges import KafkaRangeSensorSpec, build_kafka_range_sensor
from sensors.mode import streaming
from sensors.streaming import StreamingSensorSpec, streaming_sensor

FEEDBACK_RANGES = KafkaRangeSensorSpec(
    name="feedback_sensor",
    job_name=feedback_stream_job.name,
    root_asset="conversation_log",
    topic_pattern=ingest.FEEDBACK_TOPIC_PATTERN,
    downstream_config=STREAM_DOWNSTREAM_CONFIG,
    description="Requests a run of the feedback analytics assets (lake, scoring, KPI tables) "
                "for each new offset range of the `app.feedback` topic.",
    running=not streaming(),
)
feedback_sensor = build_kafka_range_sensor(FEEDBACK_RANGES)


def _open_feedback_batches(resources: dict, session: MicroBatchSession) -> FeedbackMicroBatches:
    return FeedbackMicroBatches(session, resources["kafka"], resources["s3"], resources["postgres"],
                                resources["sentiment"])


FEEDBACK_STREAM = StreamingSensorSpec(
    name="feedback_events_stream",
    feeds=feedback_stream_job.selection,
    description="Streams feedback events into the conversation lake, the scored turns and the "
                "KPI tables in a worker its ticks keep alive (no run), exactly once through the "
                "offset ledger; each tick reports what it applied as materialisations with their "
                "offset ranges.",
    open_batches=_open_feedback_batches,
    resource_keys=("kafka", "s3", "postgres", "sentiment"),
    lag_check=("conversation_log", "feedback_lag"),
    source_lag=lambda resources: feedback_lag_report(resources["kafka"], resources["postgres"]),
)


feedback_stream = streaming_sensor(FEEDBACK_STREAM, running=streaming())
