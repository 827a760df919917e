"""Streaming sensors: each tick applies micro-batches as changes arrive, without a run.

The sensor daemon starts a tick at most every 5 s (DESIGN §5), so a design that waits for a tick
to request a run, and for the run to start, cannot make a change retrievable within seconds. A
streaming tick instead works for `tick_seconds` (under the daemon's 5 s loop, so ticks follow
each other closely): it polls its source and applies whatever arrived — with the same functions
and the same exactly-once ledger as the assets' runs — every few hundred milliseconds.

Lineage: each micro-batch records what it changed in the lineage outbox, in its own transaction;
the tick returns the outbox rows after its cursor as one `AssetMaterialization` per asset (with
offsets or document versions), so every change is in Dagster's lineage within a tick. The tick
also reports its source's lag as an evaluation of the source's lag check, when the verdict
changes and at least every `lag_report_every_s`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    DefaultSensorStatus,
    MetadataValue,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from rag_assets.platform import lineage_outbox
from rag_assets.platform.db import ensure_schema
from rag_assets.platform.micro_batch import LagReport, MicroBatches, MicroBatchSession

IDLE_WAIT_S = 0.05


@dataclass(frozen=True)
class StreamingSensorSpec:
    name: str
    description: str
    # Builds the domain's micro-batches from the sensor's resources (by key) and the session.
    open_batches: Callable[[dict, MicroBatchSession], MicroBatches]
    lag_check: tuple[str, str]  # (asset key, check name) the lag is reported to
    tick_seconds: float = 4.0
    lag_report_every_s: float = 60.0


def _load_cursor(raw: str | None) -> dict:
    cursor = json.loads(raw) if raw else {}
    return {"reported": int(cursor.get("reported", 0)),
            "lag_passed": cursor.get("lag_passed"),
            "lag_reported_at": float(cursor.get("lag_reported_at", 0.0))}


def _metadata_value(value):
    return MetadataValue.json(value) if isinstance(value, (list, dict)) else value


def materialisations(rows: list[lineage_outbox.OutboxRow], tick_id: str) -> list[AssetMaterialization]:
    return [
        AssetMaterialization(
            asset_key=AssetKey(asset_key),
            description="Applied by a streaming sensor tick (micro-batches, no run).",
            metadata={**{k: _metadata_value(v) for k, v in change.metadata().items()},
                      "streaming_tick": tick_id},
        )
        for asset_key, change in sorted(lineage_outbox.fold(rows).items())
    ]


def lag_evaluation(spec: StreamingSensorSpec, lag: LagReport) -> AssetCheckEvaluation:
    asset_key, check_name = spec.lag_check
    return AssetCheckEvaluation(
        asset_key=AssetKey(asset_key), check_name=check_name, passed=lag.passed,
        severity=AssetCheckSeverity.ERROR, metadata=lag.metadata)


def run_tick(spec: StreamingSensorSpec, context: SensorEvaluationContext,
             resources: dict) -> SensorResult:
    """One tick: micro-batches for `spec.tick_seconds`, then the lineage and the lag."""
    cursor = _load_cursor(context.cursor)
    tick_id = f"stream-{spec.name}-{uuid.uuid4().hex[:12]}"
    postgres = resources["postgres"]
    deadline = time.monotonic() + spec.tick_seconds
    applied = 0
    with postgres.connection() as conn:
        session = MicroBatchSession(conn, spec.name, tick_id)
        with session.transaction() as cur:
            ensure_schema(cur, postgres.db_schema)
            lineage_outbox.prune(cur, spec.name, cursor["reported"])
        with closing(spec.open_batches(resources, session)) as batches:
            while time.monotonic() < deadline:
                taken = batches.step()
                applied += taken
                if not taken:
                    time.sleep(IDLE_WAIT_S)
            lag = batches.lag()
        with session.transaction() as cur:
            rows = lineage_outbox.pending(cur, spec.name, cursor["reported"])
    events: list = materialisations(rows, tick_id)
    now = time.time()
    new_cursor = {"reported": max((r.id for r in rows), default=cursor["reported"]),
                  "lag_passed": cursor["lag_passed"], "lag_reported_at": cursor["lag_reported_at"]}
    if lag.passed != cursor["lag_passed"] or now - cursor["lag_reported_at"] >= spec.lag_report_every_s:
        events.append(lag_evaluation(spec, lag))
        new_cursor.update(lag_passed=lag.passed, lag_reported_at=now)
    context.log.info(f"{spec.name}: {applied} changes applied, {len(rows)} micro-batch records")
    return SensorResult(asset_events=events, cursor=json.dumps(new_cursor))


def streaming_sensor(spec: StreamingSensorSpec, running: bool):
    """The `@sensor` decorator of a streaming sensor; the decorated function takes its
    resources as typed parameters and calls `run_tick` with them."""
    return sensor(
        name=spec.name, minimum_interval_seconds=1, description=spec.description,
        default_status=DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED)
