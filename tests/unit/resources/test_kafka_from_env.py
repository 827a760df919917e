"""Every Kafka client is configured from the same environment variables; SASL is optional."""

import pytest
from dagster import EnvVar

from resources.defaults import production_resources
from resources.kafka import kafka_from_env

SASL_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "broker-a:9092,broker-b:9092",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "rag-assets",
    "KAFKA_SASL_PASSWORD": "s3cret",
}
KAFKA_NAMES = [*SASL_ENV, "RAG_TOPIC_PREFIX"]


def test_a_client_logs_in_as_the_environment_says():
    kafka = kafka_from_env(topic_prefix="t.", env=SASL_ENV)
    assert "s3cret" not in repr(kafka) and "s3cret" not in str(kafka)
    assert kafka.client_config() == {
        "bootstrap_servers": ["broker-a:9092", "broker-b:9092"], "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "rag-assets",
        "sasl_plain_password": "s3cret"}


def test_without_sasl_settings_a_client_does_not_log_in():
    kafka = kafka_from_env(env={"KAFKA_BOOTSTRAP_SERVERS": "broker-a:9092",
                                "KAFKA_SASL_PASSWORD": ""})  # empty counts as unset
    assert kafka.client_config() == {"bootstrap_servers": ["broker-a:9092"],
                                     "security_protocol": "PLAINTEXT"}


def test_the_bootstrap_servers_are_required():
    with pytest.raises(KeyError, match="KAFKA_BOOTSTRAP_SERVERS"):
        kafka_from_env(env={"KAFKA_SASL_USERNAME": "rag"})


def test_the_process_environment_is_the_default(monkeypatch):
    for name, value in SASL_ENV.items():
        monkeypatch.setenv(name, value)
    assert kafka_from_env().client_config() == kafka_from_env(env=SASL_ENV).client_config()


def test_the_deployment_reads_the_password_through_an_env_var(monkeypatch):
    for name, value in SASL_ENV.items():
        monkeypatch.setenv(name, value)
    kafka = production_resources()["kafka"]
    assert kafka.sasl_password == EnvVar("KAFKA_SASL_PASSWORD")
    assert kafka.process_config_and_initialize().client_config() == (
        kafka_from_env(env=SASL_ENV).client_config())


def test_the_deployment_runs_without_sasl_settings(monkeypatch):
    for name in KAFKA_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-a:9092")
    kafka = production_resources()["kafka"].process_config_and_initialize()
    assert kafka.client_config() == {"bootstrap_servers": ["broker-a:9092"],
                                     "security_protocol": "PLAINTEXT"}
