"""Streaming sensors: changes applied as they arrive, without runs, and recorded in the lineage.

The sensor daemon starts a tick at most every 5 s (`minimum_interval_seconds`), so a design that waits for a tick
to request a run, and for the run to start, cannot make a change retrievable within seconds. A
streaming sensor's ticks instead keep a worker alive (`sensors/stream_worker.py`) that polls its
source and applies what arrives, every few hundred milliseconds at most, with the same functions
and the same exactly-once ledger as the assets' runs.

Lineage: each micro-batch records what it changed in the lineage outbox, in the transaction of
its data; each tick returns the outbox rows after its cursor as one `AssetMaterialization` per
asset (with offsets or document versions), so every change is in Dagster's lineage within a
tick or two. The tick also reports its source's lag (and any worker failure) as an evaluation of
the source's lag check, when the verdict changes and at least every `lag_report_every_s`.

Resources: a streaming sensor declares none (`sensors/deployment.py` says why); its worker is
built from the deployment's own resources, once per process. A tick logs only a failing worker:
`context.log` builds a Dagster instance, and the materialisations already say what was reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from dagster import (
    AssetSelection,
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    DefaultSensorStatus,
    MetadataValue,
    SensorEvaluationContext,
    SensorDefinition,
    SensorResult,
    sensor,
)

from rag_assets.platform import lineage_outbox
from rag_assets.platform.db import ensure_schema
from rag_assets.platform.micro_batch import LagReport, MicroBatches, MicroBatchSession
from rag_assets.platform.pg_connection import in_transaction
from sensors.deployment import deployment_resources
from sensors.mode import external_stream_workers
from sensors.stream_worker import StreamWorker, ensure_worker


# How long a tick waits for micro-batches that committed behind an older, still open
# transaction (another worker's), so that it reports them now rather than a tick later.
OUTBOX_WAIT_S = 1.0

@dataclass(frozen=True)
class StreamingSensorSpec:
    name: str
    description: str
    # Builds the domain's micro-batches from the sensor's resources (by key) and the session.
    open_batches: Callable[[dict, MicroBatchSession], MicroBatches]
    lag_check: tuple[str, str]  # (asset key, check name) the lag is reported to
    # The assets its worker keeps current (the runs-mode job's selection): the UI names the
    # sensor on their pages. It requests no run of them; its ticks report materialisations.
    feeds: AssetSelection
    resource_keys: tuple[str, ...]  # the deployment resources `open_batches` takes
    # The whole source's lag from the same resources, reported when the workers run elsewhere.
    source_lag: Callable[[dict], LagReport]
    lag_report_every_s: float = 60.0
    # The worker stops after this long without a tick: the sensor was switched off. Generous,
    # since a busy daemon can leave a running sensor without a tick for tens of seconds.
    idle_stop_s: float = 120.0


def _load_cursor(raw: str | None) -> dict:
    cursor = json.loads(raw) if raw else {}
    return {"reported": lineage_outbox.OutboxPosition.parse(cursor.get("reported")),
            "lag_passed": cursor.get("lag_passed"),
            "lag_reported_at": float(cursor.get("lag_reported_at", 0.0))}


def _metadata_value(value):
    return MetadataValue.json(value) if isinstance(value, (list, dict)) else value


def materialisations(rows: list[lineage_outbox.OutboxRow]) -> list[AssetMaterialization]:
    return [
        AssetMaterialization(
            asset_key=AssetKey(asset_key),
            description="Applied by a streaming sensor (micro-batches, no run).",
            metadata={k: _metadata_value(v) for k, v in change.metadata().items()},
        )
        for asset_key, change in lineage_outbox.fold(rows).items()  # upstream first
    ]


def worker_lag(worker: StreamWorker) -> LagReport | None:
    """The worker's lag, failed while the worker is failing; None before its first reading."""
    if worker.error is not None:
        return LagReport(passed=False, metadata={"worker_error": worker.error[:500]})
    return worker.lag


def lag_evaluation(spec: StreamingSensorSpec, lag: LagReport) -> AssetCheckEvaluation:
    asset_key, check_name = spec.lag_check
    return AssetCheckEvaluation(
        asset_key=AssetKey(asset_key), check_name=check_name, passed=lag.passed,
        severity=AssetCheckSeverity.ERROR, metadata=lag.metadata)


def run_tick(spec: StreamingSensorSpec, context: SensorEvaluationContext,
             resources: dict) -> SensorResult:
    """Keep the worker alive (unless the workers run elsewhere); report what the source's workers
    applied since the cursor, and the lag."""
    cursor = _load_cursor(context.cursor)
    worker = None if external_stream_workers() else ensure_worker(
        spec.name, resources, spec.open_batches, spec.idle_stop_s)
    postgres = resources["postgres"]
    with postgres.connection() as conn:
        with in_transaction(conn) as cur:
            ensure_schema(cur, postgres.db_schema)
        with in_transaction(conn) as cur:  # no write before the read: see `pending`
            rows = lineage_outbox.pending(cur, spec.name, cursor["reported"],
                                          wait_s=OUTBOX_WAIT_S)
            lineage_outbox.prune(cur, spec.name, cursor["reported"])
    events: list = materialisations(rows)
    reported = rows[-1].position if rows else cursor["reported"]
    new_cursor = {"reported": reported.encode(),
                  "lag_passed": cursor["lag_passed"], "lag_reported_at": cursor["lag_reported_at"]}
    lag, now = spec.source_lag(resources) if worker is None else worker_lag(worker), time.time()
    if lag is not None and (lag.passed != cursor["lag_passed"]
                            or now - cursor["lag_reported_at"] >= spec.lag_report_every_s):
        events.append(lag_evaluation(spec, lag))
        new_cursor.update(lag_passed=lag.passed, lag_reported_at=now)
    if worker is not None and worker.error is not None:
        context.log.error(f"{spec.name}: the worker is failing and retrying: {worker.error[:500]}")
    return SensorResult(asset_events=events, cursor=json.dumps(new_cursor))


def streaming_sensor(spec: StreamingSensorSpec, running: bool) -> SensorDefinition:
    """The Dagster sensor of a streaming spec: each tick calls `run_tick` with the deployment's
    resources (see the module's docstring for why they are not the sensor's own)."""

    @sensor(name=spec.name, minimum_interval_seconds=1, description=spec.description,
            asset_selection=spec.feeds,
            default_status=DefaultSensorStatus.RUNNING if running else DefaultSensorStatus.STOPPED)
    def _tick(context: SensorEvaluationContext) -> SensorResult:
        return run_tick(spec, context, deployment_resources(spec.resource_keys))

    return _tick

