"""A sensor tick takes the deployment's resources and Dagster instance, built once per process."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, SensorEvaluationContext, build_sensor_context
from dagster._core.instance.ref import InstanceRef

from sensors.definitions import all_sensors
from sensors.deployment import deployment_instance


@pytest.mark.parametrize("sensor", all_sensors, ids=[s.name for s in all_sensors])
def test_no_sensor_declares_resources(sensor):
    # Declared resources, and the instance they need, would be built again for every tick.
    assert not sensor.required_resource_keys


def _daemon_context(ref: InstanceRef) -> SensorEvaluationContext:
    # What the code server builds for a tick: a ref to the instance, not the instance.
    return SensorEvaluationContext(instance_ref=ref, last_tick_completion_time=None,
                                   last_run_key=None, cursor=None, log_key=None,
                                   repository_name=None)


def test_the_instance_is_built_once_per_process_from_the_ticks_ref(tmp_path):
    ref = InstanceRef.from_dir(str(tmp_path))
    first = deployment_instance(_daemon_context(ref))
    assert isinstance(first, DagsterInstance)
    assert deployment_instance(_daemon_context(InstanceRef.from_dir(str(tmp_path)))) is first
    (tmp_path / "other").mkdir()
    other = deployment_instance(_daemon_context(InstanceRef.from_dir(str(tmp_path / "other"))))
    assert other is not first


def test_a_context_given_an_instance_keeps_it():
    with DagsterInstance.ephemeral() as instance:
        assert deployment_instance(build_sensor_context(instance=instance)) is instance
