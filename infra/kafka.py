"""Apache Kafka 4.1.1 in KRaft mode (one node), from the jars on Maven Central.

Maven fetches the broker and a logging backend once into `<state>/kafka/libs`; the storage is
formatted once; then `kafka.Kafka` runs with every replication factor at 1.

Every listener requires SASL. Clients log in as `rag` with SCRAM-SHA-256 (the credential is kept
by the broker: written at format time, or through the admin login into storage formatted before
SASL); the broker itself, and anyone administering it, log in as `admin` with PLAIN, whose
password is only in `server.properties` (readable by its owner alone) and `secrets.env`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from infra.processes import ManagedProcess, port_open, wait_until
from infra.settings import (
    KAFKA_SASL_MECHANISM,
    KAFKA_USER,
    REPO_ROOT,
    InfraSettings,
    local_secrets,
)

POM = REPO_ROOT / "infra" / "kafka-pom.xml"
ADMIN_USER = "admin"

LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.console.ref = console
logger.kafka.name = kafka.server.KafkaServer
logger.kafka.level = info
# Refused logins ("Failed authentication with /<address> (<reason>)"): the audit trail of SASL.
logger.auth.name = org.apache.kafka.common.network.Selector
logger.auth.level = info
"""


def _plain_login(admin_password: str) -> str:
    """The PLAIN JAAS config of a listener: the broker logs in as admin, and admin is the only
    user PLAIN accepts (clients use SCRAM)."""
    return ("org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{ADMIN_USER}" password="{admin_password}" '
            f'user_{ADMIN_USER}="{admin_password}";')


def _server_properties(settings: InfraSettings, log_dir: str, admin_password: str) -> str:
    port, cport = settings.kafka_port, settings.kafka_controller_port
    plain_login = _plain_login(admin_password)
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cport}",
        "listeners": f"SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": f"{KAFKA_SASL_MECHANISM},PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": plain_login,
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        # Admin clients of Kafka 3.7+ can reach the controller directly: it takes admin only.
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": plain_login,
        "log.dirs": log_dir,
        "num.partitions": "4",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "min.insync.replicas": "1",
        "default.replication.factor": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read, whatever mode an earlier version left it with: the
    mode is set before the secret goes in."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def _credential_fingerprint(user: str, password: str) -> str:
    return f"{user} {hashlib.sha256(password.encode()).hexdigest()[:16]}\n"


def _can_list_topics(login: dict) -> bool:
    from kafka import KafkaAdminClient

    try:  # a refused login is retried until the bootstrap timeout: keep it short
        admin = KafkaAdminClient(**login, request_timeout_ms=3000, bootstrap_timeout_ms=5000)
    except Exception:
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()


class KafkaService:
    name = "kafka"

    def __init__(self, settings: InfraSettings):
        self.settings = settings
        self.home = settings.service_dir("kafka")
        self.process = ManagedProcess("kafka", self.home / "kafka.pid", self.home / "kafka.log")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.settings.kafka_port}"

    def _ensure_jars(self) -> None:
        libs = self.home / "libs"
        if any(libs.glob("kafka_2.13-*.jar")):
            return
        if shutil.which("mvn") is None:
            raise RuntimeError("Maven (mvn) is needed to fetch Kafka's jars: apt-get install maven")
        subprocess.run(
            ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={libs}"],
            check=True,
        )

    @property
    def _client_password(self) -> str:
        return local_secrets(self.settings)["KAFKA_SASL_PASSWORD"]

    @property
    def _admin_password(self) -> str:
        return local_secrets(self.settings)["RAG_KAFKA_ADMIN_PASSWORD"]

    @property
    def _credential_marker(self) -> Path:
        """Names the SCRAM user the broker keeps, and a fingerprint of its password; storage
        formatted before SASL has none."""
        return self.home / "sasl-users"

    def _login(self, mechanism: str, user: str, password: str) -> dict:
        return {"bootstrap_servers": self.address, "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": mechanism, "sasl_plain_username": user,
                "sasl_plain_password": password}

    def _admin_login(self) -> dict:
        return self._login("PLAIN", ADMIN_USER, self._admin_password)

    def _client_login(self) -> dict:
        return self._login(KAFKA_SASL_MECHANISM, KAFKA_USER, self._client_password)

    def _write_config(self) -> Path:
        (self.home / "log4j2.properties").write_text(LOG4J2)
        props = self.home / "server.properties"
        _write_private(props, _server_properties(self.settings, str(self.home / "data"),
                                                 self._admin_password))
        return props

    def _ensure_formatted(self, props: Path) -> None:
        if (self.home / "data" / "meta.properties").exists():
            return
        scram = f"{KAFKA_SASL_MECHANISM}=[name={KAFKA_USER},password={self._client_password}]"
        self._run_tool("kafka.tools.StorageTool", "format", "-t", uuid.uuid4().hex[:22],
                       "-c", str(props), "--add-scram", scram, "--ignore-formatted")
        self._record_client_credential()

    def _run_tool(self, *args: str) -> None:
        """Run one of Kafka's command-line classes. Its arguments go through a java @-file
        readable by its owner alone, so no password shows in the process list."""
        argfile = self.home / "tool.args"
        _write_private(argfile, "".join(f'"{arg}"\n' for arg in args))
        try:
            subprocess.run([*self._java(), f"@{argfile}"], check=True, capture_output=True)
        finally:
            argfile.unlink(missing_ok=True)

    def _record_client_credential(self) -> None:
        _write_private(self._credential_marker,
                       _credential_fingerprint(KAFKA_USER, self._client_password))

    def _client_credential_recorded(self) -> bool:
        marker = self._credential_marker
        return marker.exists() and marker.read_text() == _credential_fingerprint(
            KAFKA_USER, self._client_password)

    def _ensure_client_credential(self) -> None:
        """Give the broker the client's SCRAM credential when its storage lacks it (formatted
        before SASL) or holds another password (secrets.env made again), as admin."""
        if self._client_credential_recorded():
            return
        from kafka import KafkaAdminClient
        from kafka.admin import UserScramCredentialUpsertion

        admin = KafkaAdminClient(**self._admin_login(), request_timeout_ms=10000)
        try:
            credential = UserScramCredentialUpsertion(KAFKA_USER, KAFKA_SASL_MECHANISM,
                                                      self._client_password)
            error = admin.alter_user_scram_credentials([credential]).get(KAFKA_USER)
        finally:
            admin.close()
        if error:
            raise RuntimeError(f"Kafka refused the SCRAM credential of {KAFKA_USER}: {error}")
        self._record_client_credential()

    def _java(self) -> list[str]:
        return ["java", "-Xms256m", "-Xmx768m",
                f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
                "-cp", f"{self.home / 'libs'}/*"]

    def healthy(self) -> bool:
        """Up, and accepting the clients' login."""
        return port_open(self.settings.kafka_port) and _can_list_topics(self._client_login())

    def _admin_can_log_in(self) -> bool:
        return port_open(self.settings.kafka_port) and _can_list_topics(self._admin_login())

    def up(self) -> bool:
        """Start the broker unless it already runs; True if this call started it."""
        if self.process.running_pid() is not None and self.healthy():
            return False
        if port_open(self.settings.kafka_port):
            raise RuntimeError(f"port {self.settings.kafka_port} is taken by another program, "
                               "or by a broker that refuses this state directory's login "
                               "(rag-assets infra down stops the project's own)")
        self._ensure_jars()
        self._ensure_formatted(self._write_config())
        self.process.start([*self._java(), "kafka.Kafka", str(self.home / "server.properties")])
        wait_until(self._admin_can_log_in, 90, "Kafka", self.process)
        self._ensure_client_credential()
        wait_until(self.healthy, 30, "Kafka's SCRAM login", self.process)
        return True

    def down(self) -> bool:
        return self.process.stop()
