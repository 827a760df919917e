"""The feedback pipeline against real Kafka, S3 and PostgreSQL.

* KPI tables equal the oracle (`compute_kpis` over the turns a single pass over every event
  accepts) with late, out-of-order, too-late and redelivered events arriving over several runs;
  a rebuild gives the same tables.
* A run that fails after writing its lake objects and is retried leaves no duplicate lake row.
* Bad records are dead letters with their reason.
"""

import json
import random
from datetime import datetime, timedelta

import pytest
from dagster import materialize

from rag_assets.feedback import ingest
from rag_assets.feedback.assets import conversation_log
from rag_assets.feedback.checks import feedback_checks
from rag_assets.feedback.events import FeedbackEvent
from rag_assets.feedback.windows import Arrival, Granularity
from resources.sentiment import SentimentResource
from tests.integration.feedback.helpers import (
    STREAM_ASSETS,
    T0,
    as_records,
    lake_rows,
    normalised,
    oracle,
    publish,
    run_stream,
    stored_kpis,
    tick,
    turn,
    wave,
)

pytestmark = pytest.mark.integration

INCREMENTAL = {name: {"config": {"rebuild": False}}
               for name in ("feedback_scored", "kpi_hourly", "kpi_daily")}


def test_kpis_equal_the_oracle_with_late_and_out_of_order_events(kafka, s3, postgres):
    rng = random.Random(11)
    first = wave(rng, T0, 30, 120, "a")
    publish(kafka, as_records(first))
    config_1, cursor = tick(kafka, postgres)
    config_1["ops"]["conversation_log"]["config"]["allowed_lateness_hours"] = 6.0
    meta_1 = run_stream(kafka, s3, postgres, config_1)
    assert meta_1["conversation_log"]["events_read"].value == len(first)
    assert meta_1["kpi_hourly"]["windows_recomputed"].value > 0

    # Second wave: newer events, accepted-late ones for windows already reported (within 6 h
    # of their partition's frontier), too-late ones (a day behind), redeliveries, bad records.
    second = wave(rng, T0 + timedelta(hours=30), 6, 40, "b")
    frontier = max(datetime.fromisoformat(e["ts"]) for e in first + second)
    late_ok = [turn(rng, f"late-{i}", 1, frontier - timedelta(hours=2, minutes=rng.randint(0, 50)))
               for i in range(12)]
    too_late = [turn(rng, f"stale-{i}", 1, frontier - timedelta(hours=20 + i)) for i in range(6)]
    redelivered = rng.sample(first, 10)
    bad = [(b"k1", b"{not json"), (b"k2", None),
           (b"k3", json.dumps({**second[0], "ts": "2025-01-15T10:00:00"}).encode()),
           (b"k4", json.dumps({k: v for k, v in second[1].items() if k != "model_id"}).encode()),
           (b"k5", json.dumps({**second[2], "rating": 7}).encode())]
    published = second[:20] + too_late + second[20:] + late_ok + redelivered
    publish(kafka, as_records(published) + bad)
    config_2, _ = tick(kafka, postgres, cursor)
    config_2["ops"]["conversation_log"]["config"]["allowed_lateness_hours"] = 6.0
    meta_2 = run_stream(kafka, s3, postgres, config_2)
    log = meta_2["conversation_log"]
    assert log["events_read"].value == len(published) + len(bad)
    assert log["dead_letters"].value == len(bad)
    assert log["duplicates_skipped"].value >= len(redelivered)
    assert log["events_too_late"].value >= len(too_late)

    expected, outcome, parsed = oracle(kafka, timedelta(hours=6))
    assert outcome.counts()[Arrival.TOO_LATE] == log["events_too_late"].value
    stored = stored_kpis(postgres)
    for granularity in (Granularity.HOUR, Granularity.DAY):
        assert normalised(stored[granularity]) == normalised(expected[granularity])
    assert sum(r["dropped_late"] for r in stored[Granularity.DAY]) <= len(outcome.events(Arrival.TOO_LATE))

    # Dead letters carry their reason and position.
    with postgres.transaction() as cur:
        cur.execute("SELECT reason, partition, \"offset\" FROM dead_letters WHERE source = 'feedback'")
        reasons = sorted(r.split(":")[0] for r, _, _ in cur.fetchall())
    assert reasons == sorted(["malformed_json", "tombstone", "naive_timestamp", "missing_field",
                              "rating_out_of_range"])

    # A repeated range changes nothing, and a rebuild from Kafka gives the same KPI tables.
    again = run_stream(kafka, s3, postgres, {"ops": {**config_2["ops"]}})
    assert again["conversation_log"]["events_read"].value == 0
    assert again["conversation_log"]["ranges_already_applied"].value == len(
        config_2["ops"]["conversation_log"]["config"]["ranges"])
    assert stored_kpis(postgres) == stored
    rebuilt = materialize(STREAM_ASSETS, resources={"kafka": kafka, "s3": s3, "postgres": postgres,
                                                   "sentiment": SentimentResource()},
                          run_config={"ops": {"conversation_log": {"config": {
                              "allowed_lateness_hours": 6.0}}}})
    assert rebuilt.success
    after = stored_kpis(postgres)
    for granularity in (Granularity.HOUR, Granularity.DAY):
        assert normalised(after[granularity]) == normalised(expected[granularity])
    # The rebuild re-read every offset but the lake holds each one once.
    positions = lake_rows(s3)
    assert len(positions) == len(set(positions)) == sum(isinstance(p, FeedbackEvent) for p in parsed)


def test_a_retried_run_leaves_no_duplicate_lake_rows(kafka, s3, postgres, monkeypatch):
    rng = random.Random(5)
    events = wave(rng, T0, 48, 80, "r")
    publish(kafka, as_records(events))
    run_config, _ = tick(kafka, postgres)
    resources = {"kafka": kafka, "s3": s3, "postgres": postgres, "sentiment": SentimentResource()}

    real_store_letters = ingest.store_dead_letters

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash after the lake objects were written")

    # The range's last statement, after its turns are stored and its lake objects written.
    monkeypatch.setattr(ingest, "store_dead_letters", crash)
    log_only = {"ops": {"conversation_log": run_config["ops"]["conversation_log"]}}
    failed = materialize([conversation_log], resources=resources, run_config=log_only,
                         raise_on_error=False)
    assert not failed.success
    assert lake_rows(s3)  # objects were written before the transaction rolled back
    with postgres.transaction() as cur:
        cur.execute("SELECT count(*) FROM applied_offsets")
        assert cur.fetchone()[0] == 0

    monkeypatch.setattr(ingest, "store_dead_letters", real_store_letters)
    retried = run_stream(kafka, s3, postgres, run_config)
    assert retried["conversation_log"]["events_read"].value == len(events)
    assert run_stream(kafka, s3, postgres, run_config)["conversation_log"]["events_read"].value == 0
    positions = lake_rows(s3)
    assert len(positions) == len(set(positions)) == len(events)
    with postgres.transaction() as cur:
        cur.execute("SELECT count(*) FROM feedback_turns")
        assert cur.fetchone()[0] == len({(e["conversation_id"], e["turn_id"]) for e in events})

    # The checks hold on a consistent state; the chart is in the lake.
    checks = materialize([*STREAM_ASSETS, *feedback_checks], resources=resources,
                         run_config={"ops": {"conversation_log": run_config["ops"]["conversation_log"],
                                             **INCREMENTAL}})
    evaluations = {e.check_name: e.passed for e in checks.get_asset_check_evaluations()}
    assert evaluations["kpi_hourly_counts_every_turn"] and evaluations["kpi_daily_counts_every_turn"]
    assert evaluations["every_turn_scored"]
    chart = s3.get_client().get_object(Bucket=s3.lake_bucket, Key="charts/kpi_hourly_trend.png")
    assert chart["Body"].read(8) == b"\x89PNG\r\n\x1a\n"
