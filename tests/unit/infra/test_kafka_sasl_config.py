"""The local broker is closed by default: every listener wants a SASL login, and its secrets are
readable by their owner alone (no server needed)."""

import re
import subprocess
from pathlib import Path

import pytest

from infra import kafka as kafka_infra
from infra.kafka import KafkaService, _server_properties
from infra.settings import InfraSettings, connection_env, local_secrets


@pytest.fixture
def settings(tmp_path, monkeypatch) -> InfraSettings:
    monkeypatch.setenv("RAG_STATE_DIR", str(tmp_path / "state"))
    return InfraSettings.from_env()


def _properties(settings: InfraSettings, admin_password: str = "admin-secret") -> dict[str, str]:
    text = _server_properties(settings, "/data", admin_password)
    return dict(line.split("=", 1) for line in text.splitlines())


def _listener_protocols(props: dict[str, str]) -> dict[str, str]:
    mapping = dict(pair.split(":") for pair in props["listener.security.protocol.map"].split(","))
    names = [listener.split("://")[0] for listener in props["listeners"].split(",")]
    return {name: mapping[name] for name in names}


def test_no_listener_takes_clients_without_a_login(settings):
    props = _properties(settings)
    assert set(_listener_protocols(props).values()) == {"SASL_PLAINTEXT"}
    assert props["advertised.listeners"] == f"SASL_PLAINTEXT://127.0.0.1:{settings.kafka_port}"
    assert props["inter.broker.listener.name"] == "SASL_PLAINTEXT"


def test_clients_log_in_with_scram_and_only_admin_with_plain(settings):
    props = _properties(settings)
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-256,PLAIN"
    assert props["sasl.mechanism.inter.broker.protocol"] == "PLAIN"
    assert props["listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required;")
    plain = props["listener.name.sasl_plaintext.plain.sasl.jaas.config"]
    assert re.findall(r"user_(\w+)=", plain) == ["admin"]
    assert 'username="admin" password="admin-secret"' in plain


def test_the_controller_listener_takes_the_admin_login_only(settings):
    props = _properties(settings)
    assert _listener_protocols(props)["CONTROLLER"] == "SASL_PLAINTEXT"
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
    plain = props["listener.name.controller.plain.sasl.jaas.config"]
    assert re.findall(r"user_(\w+)=", plain) == ["admin"]


def test_the_kafka_secrets_are_in_no_file_others_can_read(settings):
    kafka = KafkaService(settings)
    props = kafka.home / "server.properties"
    props.write_text("from an earlier version\n")
    props.chmod(0o644)  # as the version before SASL left it
    kafka._write_config()
    kafka._record_client_credential()

    secrets = local_secrets(settings)
    kafka_secrets = [secrets["RAG_KAFKA_ADMIN_PASSWORD"], secrets["KAFKA_SASL_PASSWORD"]]
    holders = [path for path in settings.state_dir.rglob("*") if path.is_file()
               and any(secret in path.read_text() for secret in kafka_secrets)]
    assert {path.name for path in holders} == {"server.properties", "secrets.env"}
    for path in [*holders, kafka.home / "sasl-users"]:
        assert path.stat().st_mode & 0o077 == 0, path
    assert settings.state_dir.stat().st_mode & 0o007 == 0


def test_formatting_keeps_the_client_password_off_the_command_line(settings, monkeypatch):
    kafka = KafkaService(settings)
    calls = []

    def run(argv, **kwargs):
        argfile = Path(argv[-1].removeprefix("@"))
        calls.append((argv, argfile.read_text(), argfile.stat().st_mode))
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(kafka_infra.subprocess, "run", run)
    kafka._ensure_formatted(kafka._write_config())

    password = local_secrets(settings)["KAFKA_SASL_PASSWORD"]
    [(argv, arguments, mode)] = calls
    assert not any(password in arg for arg in argv)
    assert f'"SCRAM-SHA-256=[name=rag,password={password}]"' in arguments.splitlines()
    assert mode & 0o077 == 0
    assert not (kafka.home / "tool.args").exists()
    assert kafka._client_credential_recorded()


def test_the_client_credential_is_given_again_when_the_password_changes(settings):
    kafka = KafkaService(settings)
    kafka._record_client_credential()
    assert kafka._client_credential_recorded()
    secrets_file = settings.state_dir / "secrets.env"
    secrets_file.write_text(re.sub(r"(?m)^KAFKA_SASL_PASSWORD=.*$", "KAFKA_SASL_PASSWORD=new",
                                   secrets_file.read_text()))
    assert not kafka._client_credential_recorded()


def test_clients_are_told_to_log_in_and_the_admin_password_is_not_exported(settings):
    env = connection_env(settings)
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-256"
    assert env["KAFKA_SASL_USERNAME"] == "rag"
    assert env["KAFKA_SASL_PASSWORD"] == local_secrets(settings)["KAFKA_SASL_PASSWORD"]
    assert "RAG_KAFKA_ADMIN_PASSWORD" not in env
    assert local_secrets(settings)["RAG_KAFKA_ADMIN_PASSWORD"] not in env.values()
