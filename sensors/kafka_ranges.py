"""A Kafka sensor that requests runs for offset ranges (DESIGN §5).

Partitions are assigned and sought, never joined as a consumer group. Each tick reads the end
offsets, and requests one run covering the new range of every partition (bounded per
partition), with the ranges in the run config of the root asset — never the payloads. The
run re-reads exactly those ranges and records them in the ledger with its data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from rag_assets.platform import offset_ledger
from rag_assets.platform.db import ensure_schema
from resources.kafka import KafkaResource
from resources.postgres import PostgresResource
from sensors.offset_plan import cursor_key, dump_cursor, load_cursor, plan_ranges, run_key


@dataclass(frozen=True)
class KafkaRangeSensorSpec:
    name: str
    job_name: str
    root_asset: str  # the asset whose run config receives the ranges; also the ledger consumer
    topic_pattern: str  # regular expression over logical topic names
    description: str
    max_per_partition: int = 5000
    # Run config of the other assets in the job, e.g. {"identity_graph": {"rebuild": False}}.
    downstream_config: dict = field(default_factory=dict)


def _start_of_new_partitions(postgres: PostgresResource, consumer: str, bounds: dict,
                             cursor: dict[str, int]) -> dict[tuple[str, int], int]:
    """Where partitions the cursor has not seen start: after what the ledger already holds."""
    unseen = {tp: begin for tp, (begin, _) in bounds.items() if cursor_key(*tp) not in cursor}
    if not unseen:
        return {}
    with postgres.transaction() as cur:
        ensure_schema(cur, postgres.db_schema)
        return offset_ledger.next_offsets(cur, consumer, unseen)


def plan_tick(spec: KafkaRangeSensorSpec, cursor_raw: str | None, kafka: KafkaResource,
              postgres: PostgresResource) -> SensorResult:
    topics = kafka.topics_matching(spec.topic_pattern)
    if not topics:
        return SensorResult(skip_reason=f"no topic matches {spec.topic_pattern!r} yet",
                            cursor=cursor_raw)
    bounds = {(tp.topic, tp.partition): b for tp, b in kafka.offset_bounds(topics).items()}
    cursor = load_cursor(cursor_raw)
    starts = _start_of_new_partitions(postgres, spec.root_asset, bounds, cursor)
    ranges, new_cursor = plan_ranges(cursor, bounds, starts, spec.max_per_partition)
    if not ranges:
        return SensorResult(skip_reason="no new records", cursor=dump_cursor(new_cursor))
    request = RunRequest(
        run_key=run_key(ranges),
        run_config={"ops": {
            spec.root_asset: {"config": {"ranges": [r.as_config() for r in ranges]}},
            **{name: {"config": config} for name, config in spec.downstream_config.items()},
        }},
        tags={"rag/source": spec.name, "rag/events": str(sum(r.size for r in ranges))},
    )
    return SensorResult(run_requests=[request], cursor=dump_cursor(new_cursor))


def build_kafka_range_sensor(spec: KafkaRangeSensorSpec) -> SensorDefinition:
    @sensor(name=spec.name, job_name=spec.job_name, minimum_interval_seconds=5,
            default_status=DefaultSensorStatus.RUNNING, description=spec.description)
    def _sensor(context: SensorEvaluationContext, kafka: KafkaResource,
                postgres: PostgresResource) -> SensorResult:
        return plan_tick(spec, context.cursor, kafka, postgres)

    return _sensor
