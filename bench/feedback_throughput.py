"""Feedback throughput: events/s from Kafka to the KPI tables and the conversation lake.

A backlog of demo feedback events (`rag_assets.demo.conversations`, keyed by conversation id,
late and out-of-order events included) is published to a fresh `app.feedback` topic first;
then the clock starts and the real path runs until it has caught up: `feedback_sensor` ticks
(offset ranges, at most `max_per_partition` per partition per run) and each requested run
materialises the `feedback_stream` assets in process (`conversation_log` → `feedback_scored` →
`kpi_hourly` + `kpi_daily`), against the local Kafka, S3 (SeaweedFS) and PostgreSQL.

    .venv/bin/python bench/feedback_throughput.py [--events 100000] [--partitions 4]

It uses its own topic prefix, PostgreSQL schema and bucket, and removes them at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dagster import DagsterInstance, build_sensor_context, materialize  # noqa: E402

from infra import services  # noqa: E402
from infra.settings import InfraSettings, connection_env  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-per-partition", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    settings = InfraSettings.from_env()
    services.up(settings)  # reuses services already running
    env = connection_env(settings)
    os.environ.update(env)

    from rag_assets.feedback.assets import conversation_log, feedback_scored, kpi_daily, kpi_hourly
    from rag_assets.feedback.kpi_store import table_summary
    from rag_assets.feedback.lake_store import lake_summary
    from rag_assets.feedback.windows import Granularity
    from resources.kafka import KafkaResource
    from resources.postgres import PostgresResource
    from resources.sentiment import SentimentResource
    from resources.s3 import S3Storage
    from sensors.feedback import feedback_sensor
    from sensors.kafka_ranges import KafkaRangeSensorSpec, build_kafka_range_sensor

    tag = uuid.uuid4().hex[:8]
    kafka = KafkaResource(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], topic_prefix=f"bench_{tag}.")
    postgres = PostgresResource(host=env["PGHOST"], port=int(env["PGPORT"]), user=env["PGUSER"],
                                password=env["PGPASSWORD"], database=env["PGDATABASE"],
                                db_schema=f"bench_{tag}")
    bucket = f"bench-{tag}"
    s3 = S3Storage(endpoint_url=env["S3_ENDPOINT_URL"], region_name=env["AWS_REGION"],
                   aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                   aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                   knowledge_bucket=bucket, lake_bucket=bucket)
    client = s3.get_client()
    client.create_bucket(Bucket=bucket)
    topic = kafka.topic("app.feedback")
    sensor = feedback_sensor
    if args.max_per_partition != 5_000:
        sensor = build_kafka_range_sensor(KafkaRangeSensorSpec(
            name="feedback_sensor", job_name="feedback_stream", root_asset="conversation_log",
            topic_pattern=r"app\.feedback", description="bench", max_per_partition=args.max_per_partition,
            downstream_config={n: {"rebuild": False} for n in ("feedback_scored", "kpi_hourly", "kpi_daily")}))
    try:
        t = time.perf_counter()
        events = demo_events(args.events, args.seed)
        generated_s = time.perf_counter() - t
        kafka.create_topics([topic], partitions=args.partitions)
        t = time.perf_counter()
        producer = kafka.producer(linger_ms=20, batch_size=256 * 1024)
        for e in events:
            producer.send(topic, key=e["conversation_id"].encode(), value=json.dumps(e).encode())
        producer.flush()
        producer.close()
        publish_s = time.perf_counter() - t
        payload_bytes = sum(len(json.dumps(e)) for e in events)

        resources = {"kafka": kafka, "s3": s3, "postgres": postgres,
                     "sentiment": SentimentResource()}
        assets = [conversation_log, feedback_scored, kpi_hourly, kpi_daily]
        instance = DagsterInstance.ephemeral()
        cursor, runs, processed, step_s, stages = None, 0, 0, {}, {}
        load_before = os.getloadavg()[0]
        start, cpu_start = time.perf_counter(), time.process_time()
        while processed < len(events):
            context = build_sensor_context(cursor=cursor, instance=instance,
                                           resources={"kafka": kafka, "postgres": postgres})
            result = sensor(context)
            cursor = result.cursor
            if not result.run_requests:
                time.sleep(0.05)
                continue
            for request in result.run_requests:
                run = materialize(assets, run_config=request.run_config, resources=resources,
                                  instance=instance, tags=request.tags)
                assert run.success
                runs += 1
                log_meta = run.asset_materializations_for_node("conversation_log")[0].metadata
                processed += log_meta["events_read"].value
                for key, value in log_meta.items():
                    if key.startswith("seconds_"):
                        stages[key[8:]] = stages.get(key[8:], 0.0) + value.value
                for event in run.all_events:
                    if event.event_type_value == "STEP_SUCCESS":
                        step_s[event.step_key] = step_s.get(event.step_key, 0.0) + \
                            event.event_specific_data.duration_ms / 1000
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        load_after = os.getloadavg()[0]

        with postgres.transaction() as cur:
            hourly, daily = table_summary(cur, Granularity.HOUR), table_summary(cur, Granularity.DAY)
            lake = lake_summary(cur)
            cur.execute("SELECT count(*) FROM dead_letters")
            dead = cur.fetchone()[0]
        print("feedback throughput: Kafka -> conversation lake (S3 Parquet) + KPI tables (PostgreSQL)")
        print(f"  machine     : {os.cpu_count()} cores, {platform.python_implementation()} "
              f"{platform.python_version()}, local Kafka/SeaweedFS/PostgreSQL on the same machine")
        print(f"  input       : {len(events):,} demo events ({payload_bytes / len(events):.0f} B avg), "
              f"{args.partitions} partitions, published beforehand in {publish_s:.1f} s "
              f"(generated in {generated_s:.1f} s)")
        print(f"  path        : feedback_sensor ticks + in-process materialize of feedback_stream, "
              f"<= {args.max_per_partition:,} events/partition/run, {runs} runs")
        print(f"  result      : {processed:,} events in {elapsed:.1f} s = "
              f"{processed / elapsed:,.0f} events/s (wall clock)")
        print(f"  cpu         : this process used {cpu:.1f} CPU-s = {processed / cpu:,.0f} events per "
              f"CPU-second (Kafka, PostgreSQL and SeaweedFS run in their own processes); "
              f"1-min load average {load_before:.1f} before, {load_after:.1f} after")
        print("  step time   : " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(step_s.items())))
        print("  ingest time : " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(stages.items())))
        print(f"  output      : {turns_line(hourly, daily)}; lake {lake['lake_objects_total']} objects, "
              f"{lake['lake_rows_total']:,} rows; {dead} dead letters")
    finally:
        with postgres.transaction() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{postgres.db_schema}" CASCADE')
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(**kafka.client_config())
        try:
            admin.delete_topics([topic])
        finally:
            admin.close()


def turns_line(hourly: dict, daily: dict) -> str:
    return (f"kpi_hourly {hourly['rows']} rows / {hourly['turns']:,} turns, "
            f"kpi_daily {daily['rows']} rows / {daily['turns']:,} turns")


if __name__ == "__main__":
    main()
