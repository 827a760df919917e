"""Driving a streaming sensor in a test: ticks with real resources, the worker in between."""

from __future__ import annotations

import time

from dagster import AssetCheckEvaluation, AssetMaterialization, DagsterInstance, build_sensor_context

from sensors.stream_worker import ensure_worker
from sensors.streaming import StreamingSensorSpec, run_tick


def tick(spec: StreamingSensorSpec, resources: dict, cursor: str | None = None):
    context = build_sensor_context(cursor=cursor, instance=DagsterInstance.ephemeral())
    return run_tick(spec, context, resources)


def stream_until_idle(spec: StreamingSensorSpec, resources: dict, cursor: str | None = None,
                      idle_s: float = 1.0, timeout_s: float = 120.0):
    """Tick (starting the worker), wait until it has been idle for `idle_s` with its lag read,
    tick again to report, and return that last tick's result."""
    tick(spec, resources, cursor)
    worker = ensure_worker(spec.name, resources, spec.open_batches, spec.idle_stop_s)
    deadline = time.monotonic() + timeout_s
    while worker.idle_for() < idle_s or worker.lag is None:
        assert worker.error is None, worker.error
        assert time.monotonic() < deadline, "the stream never caught up"
        time.sleep(0.1)
    time.sleep(2.1)  # a lag reading taken after the last micro-batch
    return tick(spec, resources, cursor)


def materialisations(result) -> dict[str, dict]:
    """Asset key -> metadata values of the tick's materialisations."""
    return {event.asset_key.to_user_string(): {k: v.value for k, v in event.metadata.items()}
            for event in result.asset_events if isinstance(event, AssetMaterialization)}


def check_evaluations(result) -> dict[str, AssetCheckEvaluation]:
    return {event.check_name: event for event in result.asset_events
            if isinstance(event, AssetCheckEvaluation)}


def covered(ranges: list[dict]) -> dict[tuple[str, int], list[tuple[int, int]]]:
    out: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for r in ranges:
        out.setdefault((r["topic"], r["partition"]), []).append((r["start"], r["end"]))
    return out

