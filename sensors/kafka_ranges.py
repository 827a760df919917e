"""A Kafka sensor that requests runs for offset ranges (docs/architecture.md, runs mode).

Partitions are assigned and sought, never joined as a consumer group. Each tick reads the end
offsets, and requests one run covering the new range of every partition (bounded per
partition), with the ranges in the run config of the root asset — never the payloads. The
run re-reads exactly those ranges and records them in the ledger with its data.

The cursor holds the next offset to request. While a run of the source is queued the sensor
waits, so a slow run makes the next batch larger instead of the queue longer; when no run is in
flight, the cursor is rewound to the ledger, so ranges of runs that failed for good are
requested again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dagster import (
    DagsterInstance,
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
from sensors.deployment import deployment_instance, deployment_resources
from sensors.run_queue import IN_FLIGHT, WAITING, runs_of
from sensors.offset_plan import cursor_key, dump_cursor, load_cursor, plan_ranges, run_key


@dataclass(frozen=True)
class KafkaRangeSensorSpec:
    name: str
    job_name: str
    root_asset: str  # the asset whose run config receives the ranges; also the ledger consumer
    # Regular expression over logical topic names, or a function giving it at every tick.
    topic_pattern: str | Callable[[], str]
    description: str
    max_per_partition: int = 5000
    # Run config of the other assets in the job, e.g. {"identity_graph": {"rebuild": False}}.
    downstream_config: dict = field(default_factory=dict)
    running: bool = True  # the sensor's default status
    # The partition numbers this sensor requests ranges of; None = every partition. Sensors of
    # disjoint partition sets split a source between concurrent runs (docs/scaling.md).
    partitions: frozenset[int] | None = None


def _applied_marks(postgres: PostgresResource, consumer: str,
                   bounds: dict) -> dict[tuple[str, int], int]:
    """Per partition, the first offset the ledger has not applied (from the earliest retained)."""
    with postgres.transaction() as cur:
        ensure_schema(cur, postgres.db_schema)
        return offset_ledger.next_offsets(cur, consumer, {tp: b for tp, (b, _) in bounds.items()})


def plan_tick(spec: KafkaRangeSensorSpec, cursor_raw: str | None, kafka: KafkaResource,
              postgres: PostgresResource, instance: DagsterInstance) -> SensorResult:
    if runs_of(instance, spec.job_name, WAITING):
        # Back-pressure: new records wait for the queued run to start, then go as one batch.
        return SensorResult(skip_reason="a run of this source is still queued", cursor=cursor_raw)
    pattern = spec.topic_pattern() if callable(spec.topic_pattern) else spec.topic_pattern
    topics = kafka.topics_matching(pattern)
    if not topics:
        return SensorResult(skip_reason=f"no topic matches {pattern!r} yet",
                            cursor=cursor_raw)
    bounds = {(tp.topic, tp.partition): b for tp, b in kafka.offset_bounds(topics).items()
              if spec.partitions is None or tp.partition in spec.partitions}
    cursor = load_cursor(cursor_raw)
    applied = _applied_marks(postgres, spec.root_asset, bounds)
    rerequest = False
    if not runs_of(instance, spec.job_name, IN_FLIGHT):
        # Nothing in flight, so the ledger is the truth: a range requested but not applied
        # belongs to a run that failed for good, and is requested again.
        ledger_cursor = {cursor_key(*tp): mark for tp, mark in applied.items()}
        rerequest = any(ledger_cursor[k] < cursor.get(k, 0) for k in ledger_cursor)
        cursor = ledger_cursor
    ranges, new_cursor = plan_ranges(cursor, bounds, applied, spec.max_per_partition)
    if not ranges:
        return SensorResult(skip_reason="no new records", cursor=dump_cursor(new_cursor))
    key = run_key(ranges)
    request = RunRequest(
        # Run keys are unique per sensor, so a re-request needs a key of its own.
        run_key=f"{key}@retry-{time.time_ns()}" if rerequest else key,
        run_config={"ops": {
            spec.root_asset: {"config": {"ranges": [r.as_config() for r in ranges]}},
            **{name: {"config": config} for name, config in spec.downstream_config.items()},
        }},
        tags={"rag/source": spec.name, "rag/events": str(sum(r.size for r in ranges))},
    )
    return SensorResult(run_requests=[request], cursor=dump_cursor(new_cursor))


def build_kafka_range_sensor(spec: KafkaRangeSensorSpec) -> SensorDefinition:
    @sensor(name=spec.name, job_name=spec.job_name, minimum_interval_seconds=5,
            default_status=DefaultSensorStatus.RUNNING if spec.running else DefaultSensorStatus.STOPPED,
            description=spec.description)
    def _sensor(context: SensorEvaluationContext) -> SensorResult:
        resources = deployment_resources(("kafka", "postgres"))
        return plan_tick(spec, context.cursor, resources["kafka"], resources["postgres"],
                         deployment_instance(context))

    return _sensor
