"""Publish the demo data into Kafka and S3: an initial load, then (optionally) a live stream.

    publish_demo_data(continuous=False, rate=2.0, duration_s=None, seed=7) -> summary dict

Initial load: the four `cdc.<system>.<table>` topics and `app.feedback` are created (4
partitions each), every source record is sent as a Debezium snapshot read, every knowledge
document is put under the knowledge prefix, and a day's backlog of feedback is sent.

Continuous mode then produces about `rate` changes per second — CDC updates/inserts/deletes
(with tombstones), document edits, new and expired advisories, feedback turns — until
`duration_s` has elapsed or Ctrl-C; either way the producer is flushed and the summary returned.

Re-running is safe: topics are created only if missing, documents are overwritten in place, a new
snapshot is sent (as when a Debezium connector re-snapshots) with transaction ids and LSNs taken
from the wall clock so they sort after any earlier run, and rows created while streaming get
primary keys derived from the start time so two runs do not reuse a key for different rows.

Kafka: acks=all, idempotent producer, every record keyed (CDC by primary key, feedback by
conversation id) so per-key order holds within its partition.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from rag_assets.demo.conversations import FeedbackGenerator
from rag_assets.demo.debezium import DebeziumEncoder, KafkaMessage
from rag_assets.demo.documents import Document, generate_documents, modify_document, new_advisory
from rag_assets.demo.people import generate_people
from rag_assets.demo.source_systems import (
    TABLES,
    RowChange,
    SourceChangeGenerator,
    build_source_systems,
)

log = logging.getLogger(__name__)

FEEDBACK_TOPIC = "app.feedback"
_ID_EPOCH_S = 1_735_689_600  # 2025-01-01T00:00:00Z


@dataclass(frozen=True)
class DemoConfig:
    """Where the demo data goes and how much of it there is.

    `topic_prefix` is prepended to every topic name and `knowledge_prefix` replaces the S3
    resource's prefix, so a test can publish into names of its own.
    """

    topic_prefix: str = ""
    feedback_topic: str = FEEDBACK_TOPIC
    partitions: int = 4
    knowledge_bucket: str | None = None  # default: the S3 resource's knowledge_bucket
    knowledge_prefix: str | None = None  # default: the S3 resource's knowledge_prefix
    people: int = 300
    feedback_conversations: int = 80
    documents: int | None = None  # at most this many knowledge documents (default: all ~36)
    wrapped_tables: frozenset[tuple[str, str]] = frozenset({("loyalty", "members")})
    create_bucket: bool = True
    flush_interval_s: float = 1.0
    # share of continuous steps going to CDC / feedback / documents
    mix: tuple[float, float, float] = (0.6, 0.3, 0.1)

    def cdc_topic(self, system: str, table: str) -> str:
        return f"{self.topic_prefix}cdc.{system}.{table}"

    def feedback(self) -> str:
        return f"{self.topic_prefix}{self.feedback_topic}"

    def topics(self) -> list[str]:
        return [self.cdc_topic(*t) for t in TABLES] + [self.feedback()]


def _default_resources():
    from resources.defaults import production_resources

    resources = production_resources()
    return (resources["kafka"].process_config_and_initialize(),
            resources["s3"].process_config_and_initialize())


class DemoPublisher:
    """The state of one publishing session; `publish_demo_data` is the usual entry point."""

    def __init__(self, kafka, s3, config: DemoConfig | None = None, seed: int = 7,
                 now: datetime | None = None) -> None:
        self.config = config or DemoConfig()
        self.kafka = kafka
        self.s3 = s3
        self.seed = seed
        self.started = now or datetime.now(timezone.utc)
        today = self.started.date()
        start_ms = int(self.started.timestamp() * 1000)
        self.bucket = self.config.knowledge_bucket or s3.knowledge_bucket
        self.prefix = self.config.knowledge_prefix if self.config.knowledge_prefix is not None else s3.knowledge_prefix

        self.people = generate_people(self.config.people, seed, today)
        self.sources = build_source_systems(self.people, seed, today)
        documents = generate_documents(seed, today)[:self.config.documents]
        self.documents: dict[str, Document] = {d.key: d for d in documents}
        self.encoder = DebeziumEncoder(topic_prefix=self.config.topic_prefix, tx_id=start_ms,
                                       lsn=start_ms * 10_000,
                                       wrapped_tables=self.config.wrapped_tables)
        id_offset = max(0, int(self.started.timestamp()) - _ID_EPOCH_S) * 20
        self.changes = SourceChangeGenerator(self.sources, self.people, seed, today, id_offset)
        self.feedback = FeedbackGenerator(self.sources, self.people, list(self.documents.values()),
                                          seed, session=start_ms)
        self.rng = random.Random(f"publisher:{seed}")
        self._advisory_serial = 0

        self._producer = None
        self._s3_client = None
        self._pending: list[tuple[str, str, Any]] = []
        self.sent: Counter[str] = Counter()
        self.ops: dict[str, Counter[str]] = defaultdict(Counter)
        self.change_kinds: Counter[str] = Counter()
        self.doc_counts: Counter[str] = Counter()
        self.interrupted = False
        self._t0 = time.monotonic()

    # ---------------------------------------------------------------- kafka

    @property
    def producer(self):
        if self._producer is None:
            self._producer = self.kafka.producer(
                acks="all", enable_idempotence=True, retries=10, linger_ms=20,
                max_in_flight_requests_per_connection=5,
            )
        return self._producer

    def send_change(self, change: RowChange, ts_ms: int, new_transaction: bool = True) -> None:
        """One source row change as its Debezium events (a delete's tombstone included); counted
        in `sent` once `flush` has its acknowledgement."""
        for message in self.encoder.change(change, ts_ms, new_transaction):
            self._send(message)

    def _send(self, message: KafkaMessage) -> None:
        future = self.producer.send(message.topic, key=message.key, value=message.value)
        self._pending.append((message.topic, message.op, future))

    def flush(self) -> None:
        """Wait for every pending record; raise if any was not acknowledged."""
        if self._producer is None:
            return
        self._producer.flush()
        pending, self._pending = self._pending, []
        failures = []
        for topic, op, future in pending:
            try:
                future.get(timeout=30)
            except Exception as error:  # a lost record must not be counted as written
                failures.append(f"{topic}: {error!r}")
                continue
            self.sent[topic] += 1
            self.ops[topic][op] += 1
        if failures:
            raise RuntimeError(f"{len(failures)} records were not acknowledged, e.g. {failures[0]}")

    def close(self) -> None:
        if self._producer is not None:
            try:
                self.flush()
            finally:
                self._producer.close()
                self._producer = None

    # ---------------------------------------------------------------- s3

    @property
    def s3_client(self):
        if self._s3_client is None:
            self._s3_client = self.s3.get_client()
        return self._s3_client

    def _ensure_bucket(self) -> None:
        client = self.s3_client
        try:
            client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code"))
            if code not in ("404", "NoSuchBucket", "NotFound") or not self.config.create_bucket:
                raise
            client.create_bucket(Bucket=self.bucket)

    def _put(self, document: Document) -> None:
        self.s3_client.put_object(
            Bucket=self.bucket, Key=self.prefix + document.key, Body=document.body(),
            ContentType=document.content_type,
            Metadata={"revision": str(document.revision), "updated": document.updated.isoformat()},
        )

    def _delete(self, key: str) -> None:
        self.s3_client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    # ---------------------------------------------------------------- phases

    def initial_load(self) -> None:
        self.kafka.create_topics(self.config.topics(), partitions=self.config.partitions)
        self._ensure_bucket()
        ts_ms = int(self.started.timestamp() * 1000)
        for system, table in TABLES:
            for message in self.encoder.snapshot(system, table, self.sources.rows(system, table), ts_ms):
                self._send(message)
        for document in self.documents.values():
            self._put(document)
            self.doc_counts["put"] += 1
        for event in self.feedback.history(self.config.feedback_conversations, self.started):
            self._send_feedback(event)
        self.flush()

    def _send_feedback(self, event: dict[str, Any]) -> None:
        self._send(KafkaMessage(self.config.feedback(), event["conversation_id"].encode(),
                                json.dumps(event, ensure_ascii=False).encode(), "feedback"))

    def step(self, now: datetime | None = None) -> str:
        """One change of the live stream; returns what kind of change it was."""
        now = now or datetime.now(timezone.utc)
        cdc, feedback, _ = self.config.mix
        r = self.rng.random()
        if r < cdc:
            change = self.changes.next_change(now)
            self.send_change(change, int(now.timestamp() * 1000))
            kind = change.kind
        elif r < cdc + feedback:
            self._send_feedback(self.feedback.next_event(now))
            kind = "feedback_turn"
        else:
            kind = self._document_change(now)
        self.change_kinds[kind] += 1
        return kind

    def _document_change(self, now: datetime) -> str:
        advisories = sorted(k for k in self.documents if k.startswith("advisories/"))
        r = self.rng.random()
        if r < 0.15 or (r < 0.25 and not advisories):
            self._advisory_serial += 1
            document = new_advisory(self.rng, now.date(), self._advisory_serial)
            self.documents[document.key] = document
            self._put(document)
            self.doc_counts["put"] += 1
            return "document_new"
        if r < 0.25:
            key = self.rng.choice(advisories)
            del self.documents[key]
            self._delete(key)
            self.doc_counts["deleted"] += 1
            return "document_deleted"
        key = self.rng.choice(sorted(self.documents))
        document, what = modify_document(self.documents[key], self.rng, now.date())
        self.documents[key] = document
        self._put(document)
        self.doc_counts["modified"] += 1
        log.info("modified %s: %s", key, what)
        return "document_modified"

    def run_continuous(self, rate: float, duration_s: float | None,
                       sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        start = time.monotonic()
        next_at, last_flush = start, start
        while duration_s is None or time.monotonic() - start < duration_s:
            self.step()
            next_at += 1.0 / rate
            now = time.monotonic()
            if now - last_flush >= self.config.flush_interval_s:
                self.flush()
                last_flush = now
            delay = next_at - time.monotonic()
            if duration_s is not None:
                delay = min(delay, start + duration_s - time.monotonic())
            if delay > 0:
                sleep(delay)

    # ---------------------------------------------------------------- report

    def summary(self, continuous: bool) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "continuous": continuous,
            "interrupted": self.interrupted,
            "elapsed_s": round(time.monotonic() - self._t0, 3),
            "topics": {topic: self.sent.get(topic, 0) for topic in self.config.topics()},
            "ops": {topic: dict(sorted(self.ops[topic].items())) for topic in self.config.topics()},
            "schema_wrapped_topics": sorted(self.config.cdc_topic(*t) for t in self.config.wrapped_tables),
            "documents": {
                "bucket": self.bucket,
                "prefix": self.prefix,
                "put": self.doc_counts["put"],
                "modified": self.doc_counts["modified"],
                "deleted": self.doc_counts["deleted"],
                "current": len(self.documents),
            },
            "people": len(self.people),
            "source_records": {f"{s}.{t}": len(self.sources.tables[(s, t)]) for s, t in TABLES},
            "changes": dict(sorted(self.change_kinds.items())),
        }


def publish_demo_data(continuous: bool = False, rate: float = 2.0, duration_s: float | None = None,
                      seed: int = 7, *, kafka=None, s3=None, config: DemoConfig | None = None,
                      now: datetime | None = None) -> dict[str, Any]:
    """Write the demo data; returns what was written (see `DemoPublisher.summary`).

    `kafka` / `s3` default to the resources of `resources.defaults.production_resources()`
    (configured by environment variables); `config` defaults to the production topic names and
    the S3 resource's bucket and prefix.
    """
    if kafka is None or s3 is None:
        default_kafka, default_s3 = _default_resources()
        kafka, s3 = kafka or default_kafka, s3 or default_s3
    publisher = DemoPublisher(kafka, s3, config, seed, now)
    try:
        publisher.initial_load()
        if continuous:
            publisher.run_continuous(rate, duration_s)
    except KeyboardInterrupt:
        publisher.interrupted = True
    finally:
        publisher.close()
    return publisher.summary(continuous)
