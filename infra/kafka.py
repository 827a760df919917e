"""Apache Kafka 4.1.1 in KRaft mode (one node), from the jars on Maven Central.

Maven fetches the broker and a logging backend once into `<state>/kafka/libs`; the storage is
formatted once; then `kafka.Kafka` runs with every replication factor at 1.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid

from infra.processes import ManagedProcess, port_open, wait_until
from infra.settings import REPO_ROOT, InfraSettings

POM = REPO_ROOT / "infra" / "kafka-pom.xml"

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
"""


def _server_properties(settings: InfraSettings, log_dir: str) -> str:
    port, cport = settings.kafka_port, settings.kafka_controller_port
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cport}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
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

    def _ensure_formatted(self) -> None:
        (self.home / "log4j2.properties").write_text(LOG4J2)
        props = self.home / "server.properties"
        props.write_text(_server_properties(self.settings, str(self.home / "data")))
        if (self.home / "data" / "meta.properties").exists():
            return
        cluster_id = uuid.uuid4().hex[:22]
        subprocess.run(
            [*self._java(), "kafka.tools.StorageTool", "format", "-t", cluster_id,
             "-c", str(props), "--ignore-formatted"],
            check=True, capture_output=True,
        )

    def _java(self) -> list[str]:
        return ["java", "-Xms256m", "-Xmx768m",
                f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
                "-cp", f"{self.home / 'libs'}/*"]

    def healthy(self) -> bool:
        if not port_open(self.settings.kafka_port):
            return False
        from kafka import KafkaAdminClient

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.address, request_timeout_ms=3000)
        except Exception:
            return False
        try:
            admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            admin.close()

    def up(self) -> bool:
        """Start the broker unless it already runs; True if this call started it."""
        if self.process.running_pid() is not None and self.healthy():
            return False
        if port_open(self.settings.kafka_port):
            raise RuntimeError(f"port {self.settings.kafka_port} is taken by another program")
        self._ensure_jars()
        self._ensure_formatted()
        self.process.start([*self._java(), "kafka.Kafka", str(self.home / "server.properties")])
        wait_until(self.healthy, 90, "Kafka", self.process)
        return True

    def down(self) -> bool:
        return self.process.stop()
