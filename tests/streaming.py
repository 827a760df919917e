"""Evaluating a streaming sensor's tick in a test: a shorter budget, real resources."""

from __future__ import annotations

import dataclasses

from dagster import AssetCheckEvaluation, AssetMaterialization, DagsterInstance, build_sensor_context

from sensors.streaming import StreamingSensorSpec, run_tick


def stream_tick(spec: StreamingSensorSpec, resources: dict, cursor: str | None = None,
                seconds: float = 1.5):
    context = build_sensor_context(cursor=cursor, instance=DagsterInstance.ephemeral())
    return run_tick(dataclasses.replace(spec, tick_seconds=seconds), context, resources)


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
