"""The demo publisher against the running local Kafka and S3, in topics and a prefix of its own."""

from __future__ import annotations

import json

import pytest

from rag_assets.demo.publisher import DemoConfig, DemoPublisher, publish_demo_data

pytestmark = pytest.mark.integration


@pytest.fixture
def isolated(kafka, s3):
    """Topics and a bucket of this test alone (the fixtures clean them up)."""
    config = DemoConfig(topic_prefix=kafka.topic_prefix, knowledge_bucket=s3.knowledge_bucket,
                        knowledge_prefix="knowledge-base/", people=60, feedback_conversations=15)
    return kafka, s3, config


def _counts(kafka, topics):
    bounds = kafka.offset_bounds(topics)
    counts = {topic: 0 for topic in topics}
    partitions = {topic: 0 for topic in topics}
    for tp, (begin, end) in bounds.items():
        counts[tp.topic] += end - begin
        partitions[tp.topic] += 1
    return counts, partitions


def _listing(s3, prefix):
    client = s3.get_client()
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.knowledge_bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            objects[obj["Key"][len(prefix):]] = obj["ETag"]
    return objects


def test_initial_load_counts_match_summary_and_documents_are_listed(isolated):
    kafka, s3, config = isolated
    summary = publish_demo_data(seed=11, kafka=kafka, s3=s3, config=config)

    counts, partitions = _counts(kafka, config.topics())
    assert counts == summary["topics"]
    assert all(n == 4 for n in partitions.values())
    assert summary["topics"][config.cdc_topic("crm", "customers")] == summary["source_records"]["crm.customers"]
    assert summary["topics"][config.feedback()] > 0

    listing = _listing(s3, config.knowledge_prefix)
    assert len(listing) == summary["documents"]["put"] == summary["documents"]["current"] >= 30
    assert all(etag.strip('"') for etag in listing.values())
    assert {key.rsplit(".", 1)[1] for key in listing} == {"md", "txt", "html"}

    # every record is keyed and the CDC values are Debezium envelopes of snapshot reads
    topic = config.cdc_topic("booking", "bookings")
    records = []
    for tp, (begin, end) in kafka.offset_bounds([topic]).items():
        records += kafka.read_range(topic, tp.partition, begin, end)
    assert len(records) == counts[topic]
    for record in records:
        assert json.loads(record.key) == {"id": json.loads(record.value)["after"]["id"]}
        assert json.loads(record.value)["op"] == "r"


def test_continuous_run_and_rerun_are_counted_exactly(isolated):
    kafka, s3, config = isolated
    first = publish_demo_data(continuous=True, rate=40.0, duration_s=3.0, seed=11,
                              kafka=kafka, s3=s3, config=config)
    assert sum(first["changes"].values()) >= 30  # ~120 at 40/s for 3 s; loose for a busy machine
    listing_before = _listing(s3, config.knowledge_prefix)
    assert len(listing_before) == first["documents"]["current"]

    second = publish_demo_data(seed=11, kafka=kafka, s3=s3, config=config)  # a rerun is harmless
    counts, _ = _counts(kafka, config.topics())
    assert counts == {t: first["topics"][t] + second["topics"][t] for t in config.topics()}
    # tombstones follow deletes on the CDC topics
    for topic in config.topics()[:4]:
        ops = first["ops"][topic]
        assert ops.get("tombstone", 0) == ops.get("d", 0)
    # documents were overwritten in place: the same keys (plus advisories still present)
    listing_after = _listing(s3, config.knowledge_prefix)
    assert set(listing_after) == set(listing_before)


def test_keyboard_interrupt_flushes_and_returns_summary(isolated, monkeypatch):
    kafka, s3, config = isolated
    calls = {"n": 0}
    original = DemoPublisher.step

    def step(self, now=None):
        calls["n"] += 1
        if calls["n"] > 25:
            raise KeyboardInterrupt
        return original(self, now)

    monkeypatch.setattr(DemoPublisher, "step", step)
    summary = publish_demo_data(continuous=True, rate=200.0, seed=5, kafka=kafka, s3=s3, config=config)
    assert summary["interrupted"] is True
    assert sum(summary["changes"].values()) == 25
    counts, _ = _counts(kafka, config.topics())
    assert counts == summary["topics"]
