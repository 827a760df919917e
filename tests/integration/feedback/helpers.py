"""Shared helpers of the feedback integration tests: publishing to `app.feedback`, one sensor
tick and the run it asks for, and the state read back (KPI tables, lake rows) next to the
**oracle** (`compute_kpis` over the turns a single pass over every event accepts)."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime, timedelta, timezone

from dagster import DagsterInstance, materialize

from rag_assets.feedback.assets import (
    conversation_log,
    feedback_scored,
    kpi_daily,
    kpi_hourly,
)
from rag_assets.feedback.events import FeedbackEvent, parse_feedback_record
from rag_assets.feedback.kpi_store import KPI_COLUMNS, read_rows
from rag_assets.feedback.kpis import TurnFact, compute_kpis
from rag_assets.feedback.lake_layout import parquet_to_frame
from rag_assets.feedback.lake_store import list_lake_keys
from rag_assets.feedback.sentiment import VaderScorer, classify_satisfaction
from rag_assets.feedback.windows import (
    Arrival,
    Granularity,
    LatenessPolicy,
    WatermarkState,
    classify_batch,
    windows_of,
)
from resources.sentiment import SentimentResource
from sensors.feedback import FEEDBACK_RANGES
from sensors.kafka_ranges import plan_tick

STREAM_ASSETS = [conversation_log, feedback_scored, kpi_hourly, kpi_daily]
T0 = datetime(2025, 1, 14, tzinfo=timezone.utc)
MODELS = ("model-a", "model-b", "model-c")
COMMENTS = (None, None, None, "great answer, thanks!", "useless, it did not help at all",
            "ok I guess", "   ")


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def turn(rng: random.Random, conversation: str, number: int, ts: datetime, **overrides) -> dict:
    rating = rng.choice([None, None, "up", "down", 1, 2, 3, 4, 5])
    return {
        "conversation_id": conversation, "turn_id": number, "customer_ref": f"crm:{rng.randrange(50)}",
        "ts": iso(ts), "question": f"question {number} of {conversation}",
        "answer": "an answer", "model_id": rng.choice(MODELS),
        "latency_ms": rng.randint(80, 5000) + rng.choice([0, 0.5]),
        "retrieved_ids": [f"doc-{i}#0" for i in range(rng.choice([0, 1, 2]))],
        "rating": rating, "comment": rng.choice(COMMENTS), **overrides,
    }


def wave(rng: random.Random, start: datetime, hours: int, conversations: int, prefix: str) -> list[dict]:
    """Conversations over `hours` from `start`, published roughly in time order with disorder."""
    events = []
    for c in range(conversations):
        ts = start + timedelta(seconds=rng.uniform(0, hours * 3600 - 600))
        for number in range(1, rng.randint(1, 4) + 1):
            events.append(turn(rng, f"{prefix}-{c}", number, ts))
            ts += timedelta(seconds=rng.uniform(10, 200))
    events.sort(key=lambda e: e["ts"])
    for i in range(0, len(events) - 1, 5):  # local disorder
        if rng.random() < 0.5:
            events[i], events[i + 1] = events[i + 1], events[i]
    return events


def publish(kafka, items: list[tuple[bytes | None, bytes | None]], partitions: int = 3) -> None:
    topic = kafka.topic("app.feedback")
    kafka.create_topics([topic], partitions=partitions)
    producer = kafka.producer()
    for key, value in items:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def as_records(events: list[dict]) -> list[tuple[bytes, bytes]]:
    return [(e["conversation_id"].encode(), json.dumps(e).encode()) for e in events]


def tick(kafka, postgres, cursor=None):
    result = plan_tick(FEEDBACK_RANGES, cursor, kafka, postgres, DagsterInstance.ephemeral())
    assert len(result.run_requests) == 1
    return result.run_requests[0].run_config, result.cursor


def run_stream(kafka, s3, postgres, run_config):
    result = materialize(STREAM_ASSETS, run_config=run_config,
                         resources={"kafka": kafka, "s3": s3, "postgres": postgres,
                                    "sentiment": SentimentResource()})
    assert result.success
    return {node: result.asset_materializations_for_node(node)[0].metadata
            for node in ("conversation_log", "feedback_scored", "kpi_hourly", "kpi_daily")}


def all_events(kafka) -> list[FeedbackEvent | object]:
    topic = kafka.topic("app.feedback")
    parsed = []
    for tp, (begin, end) in kafka.offset_bounds([topic]).items():
        for record in kafka.read_range(topic, tp.partition, begin, end):
            parsed.append(parse_feedback_record(kafka.logical_topic(record.topic), record.partition,
                                                record.offset, record.value))
    return parsed


def oracle(kafka, lateness: timedelta):
    parsed = all_events(kafka)
    events = [p for p in parsed if isinstance(p, FeedbackEvent)]
    outcome = classify_batch(events, WatermarkState(), LatenessPolicy(lateness))
    accepted = outcome.accepted
    facts = [TurnFact.from_event(e, s)
             for e, s in zip(accepted, classify_satisfaction(accepted, VaderScorer()), strict=True)]
    drops = Counter((w, e.model_id) for e in outcome.events(Arrival.TOO_LATE) for w in windows_of(e.ts))
    expected = {}
    for row in compute_kpis(facts):
        record = row.as_record()
        record["dropped_late"] = drops.get((row.window, row.model_id), 0)
        expected.setdefault(row.granularity, []).append({c: record[c] for c in KPI_COLUMNS})
    return expected, outcome, parsed


def stored_kpis(postgres):
    with postgres.transaction() as cur:
        return {g: read_rows(cur, g) for g in (Granularity.HOUR, Granularity.DAY)}


def normalised(rows):
    return sorted((({**r, "window_start": r["window_start"].astimezone(timezone.utc),
                     "window_end": r["window_end"].astimezone(timezone.utc)})
                   for r in rows), key=lambda r: (r["window_start"], r["model_id"]))


def lake_rows(s3):
    client = s3.get_client()
    frames = [parquet_to_frame(client.get_object(Bucket=s3.lake_bucket, Key=k)["Body"].read())
              for k in list_lake_keys(s3, client)]
    return [(row.kafka_topic, row.kafka_partition, row.kafka_offset)
            for frame in frames for row in frame.itertuples()]
