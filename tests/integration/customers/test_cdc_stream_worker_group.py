"""Three `rag-assets stream --source cdc` processes on twelve partitions per topic: Kafka's group
protocol splits the partitions, one process is SIGKILLed mid-stream, the other two take its
partitions over, and the end state equals the load generator's own ground truth (not the
product's replay). The lineage outbox shows no offset applied twice, and the CDC sensor —
with the workers external — reports every micro-batch, whichever process applied it."""

from __future__ import annotations

import time

import pytest

from bench.chaos_load import ChaosLoad, compare_customers, read_customers
from bench.stream_workers import StreamWorkerProcesses, applied_ranges, coverage, overlaps
from infra.processes import wait_until
from rag_assets.platform.offset_ranges import coalesce
from sensors.customers import CDC_STREAM
from tests.streaming import check_evaluations, covered, materialisations, tick

pytestmark = pytest.mark.integration

PARTITIONS = 12
WORKERS = 3


def worker_env(services: dict, kafka, postgres) -> dict[str, str]:
    return {**services, "RAG_TOPIC_PREFIX": kafka.topic_prefix,
            "RAG_PG_SCHEMA": postgres.db_schema}


def sent_ends(load: ChaosLoad, kafka) -> dict[tuple[str, int], int]:
    """One past the last acknowledged offset of each CDC partition the load wrote to."""
    return {(kafka.topic(topic), partition): sends[-1][0] + 1
            for (topic, partition), sends in load.send_times().items()
            if topic.startswith("cdc.") and sends}


def caught_up(postgres, ends: dict[tuple[str, int], int]) -> bool:
    with postgres.transaction() as cur:
        applied = coverage(applied_ranges(cur, CDC_STREAM.name))
        cur.execute("SELECT (SELECT count(*) FROM identity_pending)"
                    " + (SELECT count(*) FROM profile_pending)")
        queued = cur.fetchone()[0]
    return queued == 0 and all(applied.get(tp, [(0, 0)])[-1][1] >= end
                               for tp, end in ends.items())


def test_killed_worker_partitions_move_to_the_others_and_nothing_is_lost_or_doubled(
        local_services, kafka, postgres, tmp_path, monkeypatch):
    load = ChaosLoad(kafka, None, "", seed=20, run="group", cdc_rate=80.0, feedback_rate=0.0,
                     documents=0, partitions=PARTITIONS)
    load.start_topics()
    workers = StreamWorkerProcesses("cdc", WORKERS, worker_env(local_services, kafka, postgres),
                                    tmp_path)
    workers.start()
    try:
        sessions = [workers.session_of(i) for i in range(WORKERS)]
        load.start()

        def sessions_applied() -> set[str]:
            with postgres.transaction() as cur:
                return {r.session for r in applied_ranges(cur, CDC_STREAM.name)}

        wait_until(lambda: set(sessions) <= sessions_applied(), 120,
                   "each of the three workers applied partitions of its own")
        with postgres.transaction() as cur:
            before = applied_ranges(cur, CDC_STREAM.name)
        victim = {(r.topic, r.partition) for r in before if r.session == sessions[0]}
        killed_at = time.time()
        assert workers.kill(0) is not None
        time.sleep(20)  # the load goes on through the rebalance
        load.finish()
        ends = sent_ends(load, kafka)
        wait_until(lambda: caught_up(postgres, ends), 180,
                   "the two remaining workers applied every partition and drained the queues")

        verdict = compare_customers(load.truth, read_customers(postgres))
        assert verdict.ok, (verdict.lost[:10], verdict.doubled[:10])
        with postgres.transaction() as cur:
            ranges = applied_ranges(cur, CDC_STREAM.name)
        assert overlaps(ranges) == []
        assert coverage(ranges) == {tp: [(0, end)] for tp, end in ends.items()}
        taken_over = {(r.topic, r.partition) for r in ranges
                      if r.at > killed_at and r.session in sessions[1:]}
        assert victim & taken_over, "no partition of the killed worker was applied by another"
        assert workers.alive() == [1, 2]
    finally:
        load.finish()
        workers.stop()

    # The code location's sensor, with the workers external, reports all of it.
    monkeypatch.setenv("RAG_STREAM_WORKERS", "external")
    result = tick(CDC_STREAM, {"kafka": kafka, "postgres": postgres})
    reported = covered(materialisations(result)["source_records"]["offset_ranges"])
    assert {tp: coalesce(spans) for tp, spans in reported.items()} == {
        tp: [(0, end)] for tp, end in ends.items()}
    lag = check_evaluations(result)["cdc_lag"]
    assert lag.passed and lag.metadata["lag_events"].value == 0
