"""The local broker wants a login: none or a wrong one is refused, the generated one works, the
controller listener takes the admin only, and storage formatted before SASL gets the client's
credential on its first start."""

import logging
import re
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    RequestTimedOutError,
    SaslAuthenticationFailedError,
)

from infra.kafka import LOG4J2, KafkaService
from infra.settings import InfraSettings, connection_env, local_secrets
from resources.kafka import kafka_from_env

pytestmark = pytest.mark.integration

BOOTSTRAP_TIMEOUT_MS = 3000


def _refused_bootstrap(caplog, login: dict) -> list:
    """kafka-python's log of the bootstrap attempts of a client that never got in: the client
    itself only raises a timeout once it gives up."""
    with caplog.at_level(logging.WARNING, logger="kafka.net.manager"):
        with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
            KafkaAdminClient(**login, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    return [record for record in caplog.records if record.name == "kafka.net.manager"]


def _errors(records: list) -> list[Exception]:
    """The errors the connection attempts ended with (the log records' arguments)."""
    return [arg for record in records if record.msg.startswith("Bootstrap connection to")
            for arg in record.args if isinstance(arg, Exception)]


@contextmanager
def _broker_log_during(settings: InfraSettings) -> Iterator[list[str]]:
    """The lines the broker logs during the block (in the list once it has ended)."""
    log = settings.state_dir / "kafka" / "kafka.log"
    seen = log.stat().st_size
    lines: list[str] = []
    yield lines
    with log.open() as file:
        file.seek(seen)
        lines.extend(file.read().splitlines())


def test_a_client_without_credentials_is_refused(local_services, infra_settings, caplog):
    with _broker_log_during(infra_settings) as broker_log:
        attempts = _refused_bootstrap(
            caplog, {"bootstrap_servers": local_services["KAFKA_BOOTSTRAP_SERVERS"]})

    # The broker hangs up on the first request that is not part of a SASL handshake.
    assert any(record.getMessage().startswith("Bootstrap attempt to bootstrap-0 failed: "
                                              "KafkaConnectionError: socket disconnected")
               for record in attempts)
    assert not any(isinstance(error, SaslAuthenticationFailedError) for error in _errors(attempts))
    assert any(line.endswith("Unexpected Kafka request of type METADATA during SASL handshake.")
               for line in broker_log)


@pytest.mark.parametrize(("mechanism", "password", "reason"), [
    ("SCRAM-SHA-256", "not-the-password",
     "Authentication failed during authentication due to invalid credentials with SASL "
     "mechanism SCRAM-SHA-256"),
    # PLAIN takes the broker's admin only, even with the client's own password.
    ("PLAIN", None, "Authentication failed: Invalid username or password"),
])
def test_a_wrong_login_is_refused_as_an_authentication_failure(local_services, infra_settings,
                                                               caplog, mechanism, password,
                                                               reason):
    login = kafka_from_env(env={**local_services, "KAFKA_SASL_MECHANISM": mechanism,
                                "KAFKA_SASL_PASSWORD": password
                                or local_services["KAFKA_SASL_PASSWORD"]}).client_config()

    with _broker_log_during(infra_settings) as broker_log:
        errors = _errors(_refused_bootstrap(caplog, login))

    # The broker answers the last SASL message with the failure and closes the connection; the
    # answer does not always reach kafka-python first, which then sees the socket closed. The
    # client's own bootstrap deadline can cut the attempt in flight short (a request timeout, or
    # "SASL Authentication timed out").
    refusals = [e for e in errors if type(e) is SaslAuthenticationFailedError]
    closed = [e for e in errors if type(e) is KafkaConnectionError]
    cut_short = [e for e in errors if type(e) is RequestTimedOutError or (
        type(e) is KafkaTimeoutError and str(e).endswith("SASL Authentication timed out"))]
    assert refusals or closed
    assert len(refusals) + len(closed) + len(cut_short) == len(errors) and len(cut_short) <= 1
    assert all(str(refusal).endswith(reason) for refusal in refusals)
    assert all(str(close).endswith("socket disconnected") for close in closed)
    refused = re.compile(r"Failed authentication with /127\.0\.0\.1 \(channelId=\S+\) "
                         rf"\({re.escape(reason)}\)")
    assert any(refused.search(line) for line in broker_log)


def test_the_generated_credentials_produce_and_consume(kafka):
    assert kafka.client_config()["security_protocol"] == "SASL_PLAINTEXT"
    assert (kafka.sasl_mechanism, kafka.sasl_username) == ("SCRAM-SHA-256", "rag")
    topic = kafka.topic("sasl")
    kafka.create_topics([topic], partitions=1)
    producer = kafka.producer()
    producer.send(topic, key=b"k", value=b"only with a login").get(timeout=10)
    producer.close()

    assert [r.value for r in kafka.read_range(topic, 0, 0, 1)] == [b"only with a login"]


def _describe_broker_via_the_controller(settings: InfraSettings, command_config: Path):
    """Kafka's own admin client, which (3.7+) can talk to the controller listener directly."""
    return subprocess.run(
        [*KafkaService(settings)._java(), "kafka.admin.ConfigCommand", "--bootstrap-controller",
         f"127.0.0.1:{settings.kafka_controller_port}", "--command-config", str(command_config),
         "--describe", "--entity-type", "brokers", "--entity-name", "1"],
        capture_output=True, text=True, timeout=180)


def test_the_controller_listener_takes_the_admin_login_only(local_services, infra_settings,
                                                            tmp_path):
    timeouts = "request.timeout.ms=3000\ndefault.api.timeout.ms=6000\n"
    anonymous, admin = tmp_path / "anonymous.properties", tmp_path / "admin.properties"
    anonymous.write_text(timeouts)
    password = local_secrets(infra_settings)["RAG_KAFKA_ADMIN_PASSWORD"]
    admin.write_text(timeouts + "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                     "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule "
                     f'required username="admin" password="{password}";\n')
    with _broker_log_during(infra_settings) as broker_log:
        refused = _describe_broker_via_the_controller(infra_settings, anonymous)
    allowed = _describe_broker_via_the_controller(infra_settings, admin)

    assert refused.returncode != 0
    assert "Timed out waiting for a node assignment" in refused.stderr
    assert any(line.endswith("Unexpected Kafka request of type DESCRIBE_CLUSTER during SASL "
                             "handshake.") for line in broker_log)
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert "Dynamic configs for broker 1 are:" in allowed.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _format_as_before_sasl(kafka: KafkaService) -> None:
    """Storage as the version before SASL left it: formatted under a PLAINTEXT listener, with no
    SCRAM credential, a world-readable server.properties, and secrets.env without Kafka's."""
    port, cport = kafka.settings.kafka_port, kafka.settings.kafka_controller_port
    props = kafka.home / "server.properties"
    props.write_text(
        f"process.roles=broker,controller\nnode.id=1\ncontroller.quorum.voters=1@127.0.0.1:{cport}\n"
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n"
        "controller.listener.names=CONTROLLER\n"
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
        f"log.dirs={kafka.home / 'data'}\n")
    props.chmod(0o644)
    (kafka.settings.state_dir / "secrets.env").write_text("PGPASSWORD=before-sasl\n")
    subprocess.run([*kafka._java(), "kafka.tools.StorageTool", "format", "-t",
                    uuid.uuid4().hex[:22], "-c", str(props)], check=True, capture_output=True)


def test_storage_formatted_before_sasl_gets_the_client_credential(infra_settings, tmp_path):
    settings = replace(infra_settings, state_dir=tmp_path / "state", kafka_port=_free_port(),
                       kafka_controller_port=_free_port())
    kafka = KafkaService(settings)
    (kafka.home / "libs").symlink_to(infra_settings.state_dir / "kafka" / "libs")
    (kafka.home / "log4j2.properties").write_text(LOG4J2)
    _format_as_before_sasl(kafka)
    assert not (kafka.home / "sasl-users").exists()
    try:
        assert kafka.up()
        client = kafka_from_env(topic_prefix="migrated.", env=connection_env(settings))
        topic = client.topic("after")
        client.create_topics([topic], partitions=1)
        producer = client.producer()
        producer.send(topic, value=b"after the migration").get(timeout=10)
        producer.close()
        assert [r.value for r in client.read_range(topic, 0, 0, 1)] == [b"after the migration"]
        assert (kafka.home / "sasl-users").exists()
        assert (kafka.home / "server.properties").stat().st_mode & 0o077 == 0
    finally:
        kafka.down()
        shutil.rmtree(settings.state_dir, ignore_errors=True)
