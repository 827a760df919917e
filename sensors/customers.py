"""The sensors of the Customer 360 pipeline (`cdc.<system>.<table>`): a streaming sensor that
applies changes in a worker its ticks keep alive, and the plain one that requests a
`customers_cdc` run per offset range (see `sensors/mode.py` for which runs by default)."""

from __future__ import annotations


from rag_assets.customers.streaming import CdcMicroBatches
from rag_assets.platform.micro_batch import MicroBatchSession
from sensors.kafka_ranges import KafkaRangeSensorSpec, build_kafka_range_sensor
from sensors.mode import streaming
from sensors.streaming import StreamingSensorSpec, streaming_sensor

cdc_sensor = build_kafka_range_sensor(KafkaRangeSensorSpec(
    name="cdc_sensor",
    job_name="customers_cdc",
    root_asset="source_records",
    topic_pattern=r"cdc\.[^.]+\.[^.]+",
    downstream_config={"identity_graph": {"rebuild": False}, "customer_profiles": {"rebuild": False}},
    description="Requests a run of the Customer 360 assets for each new offset range of the "
                "`cdc.<system>.<table>` topics.",
    running=not streaming(),
))


def _open_cdc_batches(resources: dict, session: MicroBatchSession) -> CdcMicroBatches:
    return CdcMicroBatches(session, resources["kafka"], resources["postgres"])


CDC_STREAM = StreamingSensorSpec(
    name="cdc_stream",
    description="Streams CDC events into source records, the identity graph and the profiles "
                "in a worker its ticks keep alive (no run), exactly once through the offset "
                "ledger; each tick reports what it applied as materialisations with their "
                "offset ranges.",
    open_batches=_open_cdc_batches,
    resource_keys=("kafka", "postgres"),
    lag_check=("source_records", "cdc_lag"),
)


cdc_stream = streaming_sensor(CDC_STREAM, running=streaming())
