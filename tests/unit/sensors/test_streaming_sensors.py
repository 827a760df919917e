"""The streaming sensors take their resources from the deployment, once per process."""

from __future__ import annotations

import pytest

from resources.defaults import production_resources
from sensors.customers import CDC_STREAM, cdc_stream
from sensors.feedback import FEEDBACK_STREAM, feedback_stream
from sensors.s3_documents import DOCUMENTS_STREAM, documents_stream
from sensors.deployment import deployment_resources

STREAMS = [(CDC_STREAM, cdc_stream), (FEEDBACK_STREAM, feedback_stream),
           (DOCUMENTS_STREAM, documents_stream)]


@pytest.mark.parametrize(("spec", "sensor"), STREAMS, ids=[s.name for s, _ in STREAMS])
def test_a_streaming_sensor_declares_no_resources(spec, sensor):
    # Dagster would build declared resources for every tick; the worker needs them once.
    assert sensor.name == spec.name
    assert not sensor.required_resource_keys
    assert set(spec.resource_keys) <= set(production_resources())


def test_deployment_resources_are_read_from_the_environment_once(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-a:9092")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    deployment_resources.cache_clear()
    try:
        first = deployment_resources(("kafka",))
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-b:9092")
        assert first["kafka"].bootstrap_servers == "broker-a:9092"
        assert deployment_resources(("kafka",)) is first
    finally:
        deployment_resources.cache_clear()
