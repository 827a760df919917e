"""Fuzzing the sources: generated input through the real parsers, then through the real pipeline.

1. Parsers: `--parser-events` (1,000,000) generated messages — arbitrary bytes and JSON, valid
   messages with one field replaced by arbitrary JSON or removed, truncated, deeply nested, with
   huge numbers (tests/fuzz_inputs.py) — through the CDC, feedback and S3-notification parsers,
   in this process. Counts per source: parsed, dead letters (and how many only the item guard
   caught: a gap in a parser's own checks), and exceptions that escaped (a stall: must be 0).
2. Pipeline: `--pipeline-events` (10,000) records — CDC changes over the four demo tables
   (plausible rows, rows with arbitrary values in the identity columns, mutated messages) and
   feedback turns — published to Kafka and applied by the streaming workers' own micro-batches
   (`CdcMicroBatches`, `FeedbackMicroBatches`) against the real Kafka, S3 and PostgreSQL until
   caught up. Counts: applied, dead letters by stage, and stalled = events still behind plus
   partitions held back plus worker steps that raised (must be 0).

    .venv/bin/python bench/fuzz.py [--parser-events 1000000] [--pipeline-events 10000]
        [--seed 1] [--skip-pipeline]

Uses its own topic prefix and PostgreSQL schema and removes them at the end; starts the local
services when they are not running and stops the ones it started.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import uuid
from collections import Counter
from contextlib import ExitStack, closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra import services  # noqa: E402
from infra.processes import interrupt_on_termination  # noqa: E402
from infra.settings import InfraSettings, connection_env  # noqa: E402
from sensor_runs import drop_bench_data  # noqa: E402  (bench/ is the script's own directory)
from tests.fuzz_inputs import CDC_TOPIC, RandomInput, cdc_record  # noqa: E402

SOURCES = ("cdc", "feedback", "notification")
GUARD_MARKS = ("parser failed", "unprocessable")  # reasons only the item guard writes


def parse_one(source: str, offset: int, value: bytes) -> list:
    """The dead letters the source's parser returns for one message (raises if it raises)."""
    from rag_assets.customers.cdc_events import parse_cdc_record
    from rag_assets.feedback.events import parse_feedback_record
    from rag_assets.knowledge.document_diff import parse_event_notification
    from rag_assets.platform.dead_letters import DeadLetter

    if source == "cdc":
        result = parse_cdc_record(CDC_TOPIC, 0, offset, b'{"id": 1001}', value)
    elif source == "feedback":
        result = parse_feedback_record("app.feedback", 0, offset, value)
    else:
        return parse_event_notification(value, "kb", "knowledge-base/").dead_letters
    return [result] if isinstance(result, DeadLetter) else []


def fuzz_parsers(events: int, seed: int) -> bool:
    generator = RandomInput(seed)
    counts = {source: Counter() for source in SOURCES}
    started = time.perf_counter()
    for offset in range(events):
        source = SOURCES[offset % len(SOURCES)]
        kind, value = generator.message(source)
        tally = counts[source]
        tally["messages"] += 1
        try:
            letters = parse_one(source, offset, value)
        except Exception as error:  # noqa: BLE001 — what the bench counts: a stall
            tally["stalls"] += 1
            tally[f"stall {type(error).__name__} ({kind})"] += 1
            continue
        tally["dead letters" if letters else "parsed"] += 1
        tally["guard only"] += sum(any(m in letter.reason for m in GUARD_MARKS) for letter in letters)
    elapsed = time.perf_counter() - started
    print(f"\nparsers: {events} generated messages in {elapsed:.0f} s ({events / elapsed:,.0f}/s), "
          f"seed {seed}")
    print(f"  {'source':<13}{'messages':>10}{'parsed':>10}{'dead letters':>14}{'guard only':>12}"
          f"{'stalls':>8}")
    for source, tally in counts.items():
        print(f"  {source:<13}{tally['messages']:>10}{tally['parsed']:>10}"
              f"{tally['dead letters']:>14}{tally['guard only']:>12}{tally['stalls']:>8}")
        for name, n in tally.items():
            if name.startswith("stall "):
                print(f"    {name}: {n}")
    return all(tally["stalls"] == 0 for tally in counts.values())


def publish_pipeline_load(kafka, events: int, seed: int) -> Counter:
    generator = RandomInput(seed)
    kinds: Counter = Counter()
    producer = kafka.producer(linger_ms=20)
    ts = 1_767_000_000_000
    for n in range(events):
        ts += 7
        if n % 5 == 4:  # a fifth of the load is feedback
            kind, value = generator.message("feedback")
            producer.send(kafka.topic("app.feedback"), value=value)
            kinds[f"feedback {kind}"] += 1
        else:
            kind, topic, key, value = cdc_record(generator, ts)
            producer.send(kafka.topic(topic), key=key, value=value)
            kinds[f"cdc {kind}"] += 1
    producer.flush()
    producer.close()
    return kinds


def drive(streams: dict, timeout_s: float) -> Counter:
    """Step every stream until all are caught up twice in a row; returns the failures."""
    failures: Counter = Counter()
    deadline = time.monotonic() + timeout_s
    quiet_rounds = 0
    while quiet_rounds < 2 and time.monotonic() < deadline:
        taken = 0
        for name, batches in streams.items():
            try:
                taken += batches.step()
            except Exception as error:  # noqa: BLE001 — a worker step that raised is a stall
                failures[f"{name}: {type(error).__name__}"] += 1
        behind = sum(b.lag().metadata["lag_events"] for b in streams.values())
        quiet_rounds = quiet_rounds + 1 if not taken and not behind else 0
        if not taken:
            time.sleep(1.1)  # the feedback stream gathers polls for a second
    return failures


def fuzz_pipeline(env: dict, events: int, seed: int) -> bool:
    from rag_assets.customers.streaming import CdcMicroBatches
    from rag_assets.feedback.streaming import FeedbackMicroBatches
    from rag_assets.platform.micro_batch import MicroBatchSession
    from resources.kafka import kafka_from_env
    from resources.postgres import PostgresResource
    from resources.s3 import S3Storage
    from resources.sentiment import SentimentResource

    tag = uuid.uuid4().hex[:8]
    kafka = kafka_from_env(topic_prefix=f"bench_fuzz_{tag}.", env=env)
    postgres = PostgresResource(host=env["PGHOST"], port=int(env["PGPORT"]), user=env["PGUSER"],
                                password=env["PGPASSWORD"], database=env["PGDATABASE"],
                                db_schema=f"bench_fuzz_{tag}")
    bucket = f"bench-fuzz-{tag}"
    s3 = S3Storage(endpoint_url=env["S3_ENDPOINT_URL"], region_name=env["AWS_REGION"],
                   aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                   aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                   knowledge_bucket=bucket, lake_bucket=bucket)
    topics = [kafka.topic(f"cdc.{s}.{t}") for s, t in
              (("crm", "customers"), ("loyalty", "members"), ("booking", "bookings"),
               ("support", "tickets"))] + [kafka.topic("app.feedback")]
    client = s3.get_client()
    client.create_bucket(Bucket=bucket)
    try:
        kafka.create_topics(topics, partitions=2)
        kinds = publish_pipeline_load(kafka, events, seed)
        print(f"\npipeline: published {events} records ({dict(sorted(kinds.items()))})", flush=True)
        started = time.perf_counter()
        with ExitStack() as stack:
            conn = stack.enter_context(postgres.connection())
            streams = {
                "cdc_stream": stack.enter_context(closing(CdcMicroBatches(
                    MicroBatchSession(conn, "cdc_stream", f"fuzz-{tag}"), kafka, postgres))),
                "feedback_events_stream": stack.enter_context(closing(FeedbackMicroBatches(
                    MicroBatchSession(conn, "feedback_events_stream", f"fuzz-{tag}"), kafka, s3,
                    postgres, SentimentResource()))),
            }
            failures = drive(streams, timeout_s=max(300.0, events / 20))
            behind = {name: b.lag().metadata["lag_events"] for name, b in streams.items()}
            held = {name: len(b.source.lag().held_back) for name, b in streams.items()}
        elapsed = time.perf_counter() - started
        figures = pipeline_figures(postgres)
    finally:
        drop_bench_data(postgres, kafka, topics)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)
    stalled = sum(behind.values()) + sum(held.values()) + sum(failures.values())
    print(f"  caught up in {elapsed:.0f} s")
    print(f"  applied: {figures['records']} live source records from "
          f"{figures['cdc_applied']} CDC events, {figures['profiles']} profiles, "
          f"{figures['turns']} feedback turns, {figures['lake_rows']} lake rows")
    print(f"  dead letters: {dict(sorted(figures['dead_letters'].items()))}")
    print(f"  guard-only reasons: {dict(figures['guard_reasons'])}")
    print(f"  stalled: {stalled} (events behind {behind}, partitions held back {held}, "
          f"worker steps that raised {dict(failures)})")
    return stalled == 0


def pipeline_figures(postgres) -> dict:
    with postgres.transaction() as cur:
        def count(sql: str) -> int:
            cur.execute(sql)
            return cur.fetchone()[0]
        cur.execute("SELECT source, count(*) FROM dead_letters GROUP BY source")
        letters = dict(cur.fetchall())
        cur.execute("SELECT reason, count(*) FROM dead_letters WHERE reason LIKE '%%failed:%%'"
                    " GROUP BY reason ORDER BY 2 DESC LIMIT 10")
        guard = cur.fetchall()
        cdc_applied = count("SELECT coalesce(sum((metadata->>'events_applied')::int), 0) FROM"
                            " lineage_outbox WHERE asset_key = 'source_records'")
        return {"records": count("SELECT count(*) FROM source_records WHERE row_data IS NOT NULL"),
                "cdc_applied": cdc_applied,
                "profiles": count("SELECT count(*) FROM customer_profiles"),
                "turns": count("SELECT count(*) FROM feedback_turns"),
                "lake_rows": count("SELECT coalesce(sum(row_count), 0) FROM conversation_lake_objects"),
                "dead_letters": letters, "guard_reasons": guard}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parser-events", type=int, default=1_000_000)
    parser.add_argument("--pipeline-events", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()
    interrupt_on_termination()
    print(f"fuzz: python {platform.python_version()}, {os.cpu_count()} cores, seed {args.seed}")
    ok = fuzz_parsers(args.parser_events, args.seed)
    if not args.skip_pipeline:
        settings = InfraSettings.from_env()
        started = services.up(settings)
        env = connection_env(settings)
        os.environ.update(env)
        try:
            ok = fuzz_pipeline(env, args.pipeline_events, args.seed) and ok
        finally:
            if started:
                services.down(settings, only=set(started))
    print("\nresult:", "0 stalls" if ok else "STALLS FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
