"""Kafka access for sensors and runs: explicit partition assignment, no consumer groups.

Sensors and runs read exact offset ranges, so nothing here commits offsets to Kafka; the
applied offsets live in PostgreSQL beside the data they produced (`platform/offset_ledger.py`).
Stream worker processes of one source share a consumer group for partition assignment only
(`rag_assets/platform/kafka_stream.py`); they too take their positions from the ledger.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial

from dagster import ConfigurableResource
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from pydantic import Field


# The resource's connection fields and the environment variables that set them.
KAFKA_ENV_VARS = {
    "bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "security_protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "KAFKA_SASL_MECHANISM",
    "sasl_username": "KAFKA_SASL_USERNAME",
    "sasl_password": "KAFKA_SASL_PASSWORD",
}


class KafkaResource(ConfigurableResource):
    """Connection settings for the Kafka cluster; SASL and TLS settings are passed through."""

    bootstrap_servers: str = Field(description="Comma-separated host:port list.")
    security_protocol: str = Field(default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.")
    sasl_mechanism: str | None = Field(default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.")
    sasl_username: str | None = None
    sasl_password: str | None = Field(default=None, repr=False)  # kept out of reprs and logs
    ssl_cafile: str | None = None
    topic_prefix: str = Field(
        default="", description="Prepended to every topic name; keeps deployments (and tests) apart."
    )

    def topic(self, logical_name: str) -> str:
        """The real topic of a logical name such as `app.feedback`."""
        return f"{self.topic_prefix}{logical_name}"

    def logical_topic(self, topic: str) -> str:
        return topic[len(self.topic_prefix):] if topic.startswith(self.topic_prefix) else topic

    def topics_matching(self, logical_pattern: str) -> list[str]:
        """Existing topics whose logical name matches the regular expression."""
        pattern = re.compile(logical_pattern)
        return [
            t for t in self.list_topics()
            if t.startswith(self.topic_prefix) and pattern.fullmatch(self.logical_topic(t))
        ]

    def client_config(self) -> dict:
        config = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
        }
        optional = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_username,
            "sasl_plain_password": self.sasl_password,
            "ssl_cafile": self.ssl_cafile,
        }
        config.update({key: value for key, value in optional.items() if value})
        return config

    @contextmanager
    def consumer(self, **overrides) -> Iterator[KafkaConsumer]:
        consumer = KafkaConsumer(
            **self.client_config(), group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", consumer_timeout_ms=1000, **overrides,
        )
        try:
            yield consumer
        finally:
            consumer.close()

    def producer(self, **overrides) -> KafkaProducer:
        options = {"acks": "all", "linger_ms": 5, **overrides}
        return KafkaProducer(**self.client_config(), **options)

    def create_topics(self, topics: list[str], partitions: int = 4) -> None:
        admin = KafkaAdminClient(**self.client_config())
        try:
            existing = set(admin.list_topics())
            missing = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
            if missing:
                try:
                    admin.create_topics(missing)
                except TopicAlreadyExistsError:
                    pass
        finally:
            admin.close()

    def delete_prefixed_topics(self) -> list[str]:
        """Delete every topic under this resource's `topic_prefix` (a test's or a benchmark's
        namespace); returns their names."""
        admin = KafkaAdminClient(**self.client_config())
        try:
            mine = [t for t in admin.list_topics() if t.startswith(self.topic_prefix)]
            if mine:
                admin.delete_topics(mine)
            return mine
        finally:
            admin.close()

    def list_topics(self) -> list[str]:
        with self.consumer() as consumer:
            return sorted(consumer.topics())

    def offset_bounds(self, topics: list[str]) -> dict[TopicPartition, tuple[int, int]]:
        """(earliest retained, end) offsets of every partition of the given topics."""
        with self.consumer() as consumer:
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            if not partitions:
                return {}
            begin = consumer.beginning_offsets(partitions)
            end = consumer.end_offsets(partitions)
        return {tp: (begin[tp], end[tp]) for tp in partitions}

    @contextmanager
    def range_reader(self) -> Iterator[Callable[..., list]]:
        """`read_range` through one consumer for many ranges (the ranges of a run): a new
        consumer spends ~100 ms connecting and fetching metadata before its first records, a
        reused one ~15-70 ms per range (local Kafka)."""
        # retry_backoff_ms: a poll that finds nothing fetchable yet (always the first one after
        # seek) sleeps that long; 100 ms by default, a quarter of a 20k-record read here.
        # max_partition_fetch_bytes: small fetches stop near `end` instead of fetching and
        # decoding megabytes past it; a larger record batch still comes whole (KIP-74).
        with self.consumer(max_partition_fetch_bytes=512 * 1024,
                           retry_backoff_ms=10) as consumer:
            yield partial(_read_range, consumer)

    def read_range(self, topic: str, partition: int, start: int, end: int,
                   timeout_s: float = 30.0) -> list:
        """Every record of `topic/partition` with start <= offset < end, in offset order."""
        if end <= start:
            return []
        with self.range_reader() as read:
            return read(topic, partition, start, end, timeout_s)


def kafka_from_env(topic_prefix: str = "", env: Mapping[str, str] | None = None) -> KafkaResource:
    """The cluster of KAFKA_BOOTSTRAP_SERVERS, reached as KAFKA_SECURITY_PROTOCOL and the
    KAFKA_SASL_* settings say (from `env`, by default the process environment). Only the
    bootstrap servers are required: without SASL settings the client does not log in, for
    clusters reached over TLS or plaintext on purpose."""
    env = os.environ if env is None else env
    if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
        raise KeyError("KAFKA_BOOTSTRAP_SERVERS")
    settings = {field: env[name] for field, name in KAFKA_ENV_VARS.items() if env.get(name)}
    return KafkaResource(**settings, topic_prefix=topic_prefix)


def _read_range(consumer: KafkaConsumer, topic: str, partition: int, start: int, end: int,
                timeout_s: float = 30.0) -> list:
    """`KafkaResource.read_range` with a given consumer (assigned to this partition only)."""
    if end <= start:
        return []
    tp = TopicPartition(topic, partition)
    records = []
    consumer.assign([tp])
    consumer.seek(tp, start)
    deadline = time.monotonic() + timeout_s
    while consumer.position(tp) < end:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic}/{partition}: could not read up to offset {end}")
        batch = consumer.poll(timeout_ms=500, max_records=5000).get(tp, [])
        records.extend(r for r in batch if start <= r.offset < end)
    return records
