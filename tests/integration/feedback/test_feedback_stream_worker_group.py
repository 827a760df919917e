"""Two `rag-assets stream --source feedback` processes on one consumer group: the partitions of
`app.feedback` are split between them, and every turn the load generator sent counts once in the
KPI tables and once in the lake — checked against the generator's own ground truth."""

from __future__ import annotations

import time

import pytest

from bench.chaos_load import ChaosLoad, compare_feedback, read_feedback
from bench.stream_workers import StreamWorkerProcesses, applied_ranges, coverage, overlaps
from infra.processes import wait_until
from sensors.feedback import FEEDBACK_STREAM

pytestmark = pytest.mark.integration

WORKERS = 2


def test_two_feedback_workers_split_the_partitions_and_every_turn_counts_once(
        local_services, kafka, postgres, s3, tmp_path):
    load = ChaosLoad(kafka, s3.get_client(), s3.lake_bucket, seed=21, run=f"fb{time.time_ns()}",
                     cdc_rate=0.0, feedback_rate=40.0, documents=0, partitions=6)
    load.start_topics()
    env = {**local_services, "RAG_TOPIC_PREFIX": kafka.topic_prefix,
           "RAG_PG_SCHEMA": postgres.db_schema, "RAG_LAKE_BUCKET": s3.lake_bucket,
           "RAG_KB_BUCKET": s3.knowledge_bucket}
    workers = StreamWorkerProcesses("feedback", WORKERS, env, tmp_path / "workers")
    workers.start()

    def applied() -> list:
        with postgres.transaction() as cur:
            cur.execute("SELECT to_regclass('lineage_outbox') IS NOT NULL")
            return applied_ranges(cur, FEEDBACK_STREAM.name, "conversation_log") \
                if cur.fetchone()[0] else []

    try:
        sessions = {workers.session_of(i) for i in range(WORKERS)}
        load.start()
        wait_until(lambda: sessions <= {r.session for r in applied()}, 120,
                   "both workers applied partitions of their own")
        time.sleep(5)
        load.finish()
        ends = {(kafka.topic(t), p): s[-1][0] + 1 for (t, p), s in load.send_times().items() if s}
        wait_until(lambda: {tp: spans[-1][1] for tp, spans in coverage(applied()).items()} == ends,
                   120, "every sent turn applied")
    finally:
        load.finish()
        workers.stop()

    ranges = applied()
    assert overlaps(ranges) == []
    # The first member held every partition until the second joined; in the end each holds some.
    last_owner = {(r.topic, r.partition): r.session for r in sorted(ranges, key=lambda r: r.start)}
    assert set(last_owner.values()) == sessions, last_owner
    actual = read_feedback(postgres, s3.get_client(), s3.lake_bucket, load.run_tag)
    verdict = compare_feedback(load.truth, actual)
    assert verdict.ok, (verdict.lost[:10], verdict.doubled[:10])
    assert verdict.figures["turns"] == len(load.truth.turns) > 0
