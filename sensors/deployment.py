"""What a sensor tick needs from the deployment, built once per process instead of per tick.

Dagster builds a sensor's declared resources, and the `DagsterInstance` behind `context.instance`
and `context.log`, afresh for every tick: an instance from its ref (storage engines, run
coordinator, compute-log manager), a PostgreSQL connection and a Kafka login each time. Under a
steady change stream that was a tenth of the code server's CPU (docs/benchmarks.md, "where the
time goes"). The sensors of this project therefore declare no resources: they take the
deployment's own (`resources.defaults`, read from the environment like the Definitions' ones)
and one instance per process. Tests call the sensors' tick functions (`plan_tick`,
`plan_listing_tick`, `run_tick`) with resources of their own.
"""

from __future__ import annotations

import functools
import threading

from dagster import DagsterInstance, SensorEvaluationContext

from resources.defaults import resource_from_environment

_instance_lock = threading.Lock()
_instances: list[tuple[object, DagsterInstance]] = []  # (instance ref, instance) of this process


@functools.cache
def deployment_resources(keys: tuple[str, ...]) -> dict:
    """The deployment's resources of `keys`, configured from the environment once per process."""
    return {key: resource_from_environment(key) for key in keys}


def deployment_instance(context: SensorEvaluationContext) -> DagsterInstance:
    """The tick's Dagster instance, built from its ref once per process (a context built by a
    test with an instance of its own returns that one)."""
    ref = context.instance_ref
    if ref is None:
        return context.instance
    with _instance_lock:
        for known_ref, instance in _instances:
            if known_ref == ref:
                return instance
        instance = DagsterInstance.from_ref(ref)
        _instances.append((ref, instance))
        return instance
