"""The publisher's bookkeeping, against in-memory fakes of the Kafka and S3 resources."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from rag_assets.demo.publisher import DemoConfig, DemoPublisher, publish_demo_data

NOW = datetime(2025, 1, 15, 12, tzinfo=timezone.utc)


class FakeFuture:
    def get(self, timeout=None):
        return None


class FakeProducer:
    def __init__(self, sink, options):
        self.sink, self.options, self.closed = sink, options, False

    def send(self, topic, key=None, value=None):
        self.sink.append((topic, key, value))
        return FakeFuture()

    def flush(self):
        pass

    def close(self):
        self.closed = True


class FakeKafka:
    def __init__(self):
        self.records, self.topics, self.producers = [], {}, []

    def create_topics(self, topics, partitions=4):
        for topic in topics:
            self.topics.setdefault(topic, partitions)

    def producer(self, **options):
        producer = FakeProducer(self.records, options)
        self.producers.append(producer)
        return producer


class FakeS3Client:
    def __init__(self):
        self.buckets, self.objects = set(), {}

    def head_bucket(self, Bucket):
        if Bucket not in self.buckets:
            raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadBucket")

    def create_bucket(self, Bucket):
        self.buckets.add(Bucket)

    def put_object(self, Bucket, Key, Body, ContentType, Metadata):
        self.objects[(Bucket, Key)] = (Body, ContentType, Metadata)

    def delete_object(self, Bucket, Key):
        self.objects.pop((Bucket, Key), None)


class FakeS3:
    knowledge_bucket = "kb"
    knowledge_prefix = "knowledge-base/"

    def __init__(self):
        self.client = FakeS3Client()

    def get_client(self):
        return self.client


CONFIG = DemoConfig(people=80, feedback_conversations=20)


def _publish(**kwargs):
    kafka, s3 = FakeKafka(), FakeS3()
    summary = publish_demo_data(kafka=kafka, s3=s3, config=CONFIG, now=NOW, **kwargs)
    return kafka, s3, summary


def test_initial_load_writes_and_counts_everything():
    kafka, s3, summary = _publish()
    assert kafka.topics == {t: 4 for t in CONFIG.topics()}
    assert Counter(topic for topic, _, _ in kafka.records) == summary["topics"]
    for system_table, n in summary["source_records"].items():
        assert summary["topics"][f"cdc.{system_table}"] == n
        assert summary["ops"][f"cdc.{system_table}"] == {"r": n}
    assert summary["topics"]["app.feedback"] > 20
    assert all(key for _, key, _ in kafka.records)  # every record keyed
    assert s3.client.buckets == {"kb"}
    assert len(s3.client.objects) == summary["documents"]["put"] == summary["documents"]["current"]
    assert all(key.startswith("knowledge-base/") for _, key in s3.client.objects)
    assert kafka.producers[0].options["acks"] == "all" and kafka.producers[0].closed
    json.dumps(summary)  # the CLI prints it as JSON


def test_same_seed_and_clock_give_the_same_records():
    first, _, _ = _publish(seed=3)
    second, _, _ = _publish(seed=3)
    other, _, _ = _publish(seed=4)
    assert first.records == second.records
    assert first.records != other.records


def test_topic_and_key_prefixes_are_honoured():
    kafka, s3 = FakeKafka(), FakeS3()
    config = DemoConfig(topic_prefix="t1.", knowledge_prefix="t1/kb/", knowledge_bucket="b2",
                        people=30, feedback_conversations=5)
    summary = publish_demo_data(kafka=kafka, s3=s3, config=config, now=NOW)
    assert set(kafka.topics) == {"t1.cdc.crm.customers", "t1.cdc.booking.bookings", "t1.cdc.loyalty.members",
                                 "t1.cdc.support.tickets", "t1.app.feedback"}
    assert {bucket for bucket, _ in s3.client.objects} == {"b2"}
    assert all(key.startswith("t1/kb/") for _, key in s3.client.objects)
    assert summary["documents"]["prefix"] == "t1/kb/"


def test_continuous_steps_mix_changes_and_keep_s3_in_step():
    kafka, s3 = FakeKafka(), FakeS3()
    publisher = DemoPublisher(kafka, s3, CONFIG, seed=7, now=NOW)
    publisher.initial_load()
    start = len(kafka.records)
    kinds = Counter(publisher.step(NOW + timedelta(seconds=i)) for i in range(600))
    publisher.close()
    assert kinds["feedback_turn"] > 100
    assert kinds["document_modified"] > 10 and kinds["document_new"] > 0
    assert sum(v for k, v in kinds.items() if k.startswith(("crm_", "booking_", "ticket_", "loyalty_"))) > 250
    live = kafka.records[start:]
    # every delete is immediately followed by its tombstone
    for i, (topic, key, value) in enumerate(live):
        if value is not None and topic.startswith("cdc.") and json.loads(value).get(
                "payload", json.loads(value)).get("op") == "d":
            assert live[i + 1] == (topic, key, None)
    summary = publisher.summary(continuous=True)
    assert Counter(topic for topic, _, _ in kafka.records) == summary["topics"]
    assert {key[len("knowledge-base/"):] for _, key in s3.client.objects} == set(publisher.documents)
    docs = summary["documents"]
    assert docs["put"] - docs["deleted"] == docs["current"]


def test_keyboard_interrupt_returns_a_summary(monkeypatch):
    calls = {"n": 0}
    original = DemoPublisher.step

    def step(self, now=None):
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt
        return original(self, now)

    monkeypatch.setattr(DemoPublisher, "step", step)
    kafka, _, summary = _publish(continuous=True, rate=1000.0)
    assert summary["interrupted"] and sum(summary["changes"].values()) == 10
    assert kafka.producers[0].closed
    assert Counter(topic for topic, _, _ in kafka.records) == summary["topics"]


def test_duration_bounds_a_continuous_run():
    _, _, summary = _publish(continuous=True, rate=50.0, duration_s=0.5)
    assert not summary["interrupted"]
    assert 5 <= sum(summary["changes"].values()) <= 40


def test_rate_must_be_positive():
    with pytest.raises(ValueError):
        _publish(continuous=True, rate=0, duration_s=1)
