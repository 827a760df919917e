"""Shared by the feedback benchmarks: demo feedback events published as a backlog to a topic of
their own, next to a PostgreSQL schema and an S3 bucket of their own, all removed afterwards."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone


def demo_events(count: int, seed: int) -> list[dict]:
    from rag_assets.demo.conversations import FeedbackGenerator
    from rag_assets.demo.documents import generate_documents
    from rag_assets.demo.people import generate_people
    from rag_assets.demo.source_systems import build_source_systems

    today = date(2025, 1, 15)
    people = generate_people(300, seed=seed, today=today)
    generator = FeedbackGenerator(build_source_systems(people, seed=seed, today=today), people,
                                  generate_documents(seed=seed, today=today), seed=seed)
    events: list[dict] = []
    now = datetime(2025, 1, 15, tzinfo=timezone.utc)
    while len(events) < count:
        events.extend(generator.history(max(1, (count - len(events)) // 2), now))
    return events[:count]


@dataclass(frozen=True)
class FeedbackBench:
    """The resources of one benchmark, named after `tag` (so another process can rebuild them)."""

    env: dict
    tag: str

    @property
    def kafka(self):
        from resources.kafka import kafka_from_env

        return kafka_from_env(topic_prefix=f"bench_{self.tag}.", env=self.env)

    @property
    def postgres(self):
        from resources.postgres import PostgresResource

        env = self.env
        return PostgresResource(host=env["PGHOST"], port=int(env["PGPORT"]), user=env["PGUSER"],
                                password=env["PGPASSWORD"], database=env["PGDATABASE"],
                                db_schema=f"bench_{self.tag}")

    @property
    def bucket(self) -> str:
        return f"bench-{self.tag}"

    @property
    def s3(self):
        from resources.s3 import S3Storage

        env = self.env
        return S3Storage(endpoint_url=env["S3_ENDPOINT_URL"], region_name=env["AWS_REGION"],
                         aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                         aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                         knowledge_bucket=self.bucket, lake_bucket=self.bucket)

    @property
    def topic(self) -> str:
        return self.kafka.topic("app.feedback")

    def resources(self) -> dict:
        from resources.sentiment import SentimentResource

        return {"kafka": self.kafka, "s3": self.s3, "postgres": self.postgres,
                "sentiment": SentimentResource()}


@contextmanager
def feedback_bench(env: dict, tag: str, partitions: int) -> Iterator[FeedbackBench]:
    """A fresh topic with `partitions` partitions, bucket and schema; removed on exit."""
    bench = FeedbackBench(env, tag)
    client = bench.s3.get_client()
    client.create_bucket(Bucket=bench.bucket)
    try:
        bench.kafka.create_topics([bench.topic], partitions=partitions)
        yield bench
    finally:
        _remove(bench, client)


def _remove(bench: FeedbackBench, client) -> None:
    from kafka import KafkaAdminClient

    with bench.postgres.transaction() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{bench.postgres.db_schema}" CASCADE')
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bench.bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bench.bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bench.bucket)
    admin = KafkaAdminClient(**bench.kafka.client_config())
    try:
        admin.delete_topics([bench.topic])
    finally:
        admin.close()


def publish(bench: FeedbackBench, events: list[dict]) -> float:
    """Publish the events keyed by conversation id; returns the seconds it took."""
    started = time.perf_counter()
    producer = bench.kafka.producer(linger_ms=20, batch_size=256 * 1024)
    for e in events:
        producer.send(bench.topic, key=e["conversation_id"].encode(), value=json.dumps(e).encode())
    producer.flush()
    producer.close()
    return time.perf_counter() - started


def output_summary(bench: FeedbackBench) -> dict:
    """What the pipeline produced: KPI rows and turns, lake objects and rows, dead letters."""
    from rag_assets.feedback.kpi_store import read_rows, table_summary
    from rag_assets.feedback.lake_store import lake_summary
    from rag_assets.feedback.windows import Granularity

    with bench.postgres.transaction() as cur:
        hourly, daily = table_summary(cur, Granularity.HOUR), table_summary(cur, Granularity.DAY)
        kpis = [read_rows(cur, g) for g in (Granularity.HOUR, Granularity.DAY)]
        lake = lake_summary(cur)
        cur.execute("SELECT count(*) FROM dead_letters")
        dead = cur.fetchone()[0]
    return {"hourly": hourly, "daily": daily, "lake_objects": lake["lake_objects_total"],
            "lake_rows": lake["lake_rows_total"], "dead_letters": dead,
            # Equal digests: equal KPI tables, whatever the timing of the runs that built them.
            "kpi_digest": hashlib.sha256(repr(kpis).encode()).hexdigest()[:12]}


def output_line(summary: dict) -> str:
    hourly, daily = summary["hourly"], summary["daily"]
    return (f"kpi_hourly {hourly['rows']} rows / {hourly['turns']:,} turns, "
            f"kpi_daily {daily['rows']} rows / {daily['turns']:,} turns; lake "
            f"{summary['lake_objects']} objects, {summary['lake_rows']:,} rows; "
            f"{summary['dead_letters']} dead letters")


@dataclass
class RunTotals:
    """What the `feedback_stream` runs of a benchmark did, summed over the runs."""

    runs: int = 0
    events: int = 0
    ingest_s: dict = field(default_factory=dict)  # conversation_log's stages
    step_s: dict = field(default_factory=dict)  # each asset's step

    def add(self, run) -> None:
        self.runs += 1
        log_meta = run.asset_materializations_for_node("conversation_log")[0].metadata
        self.events += log_meta["events_read"].value
        for key, value in log_meta.items():
            if key.startswith("seconds_"):
                self.ingest_s[key[8:]] = self.ingest_s.get(key[8:], 0.0) + value.value
        for event in run.get_step_success_events():
            self.step_s[event.step_key] = (self.step_s.get(event.step_key, 0.0)
                                           + event.event_specific_data.duration_ms / 1000)
