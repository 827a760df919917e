"""The streaming CDC sensor against real Kafka and PostgreSQL: changes applied inside the tick
reach the same state as the oracle, every applied offset is in the lineage it reports, and the
run path and the stream never apply a range twice."""

import time
from contextlib import closing

import pytest

from rag_assets.customers.streaming import CdcMicroBatches
from rag_assets.platform import lineage_outbox
from rag_assets.platform.micro_batch import MicroBatchSession
from sensors.customers import CDC_STREAM
from tests.integration.customers.helpers import (
    assert_matches_oracle,
    demo_messages,
    materialize_customers,
    metadata,
    oracle_state,
    publish,
    read_log,
    stored_state,
)
from tests.streaming import check_evaluations, covered, materialisations, stream_until_idle, tick

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("streaming_workers")]


def resources(kafka, postgres) -> dict:
    return {"kafka": kafka, "postgres": postgres}


def test_the_stream_applies_every_change_and_reports_its_offsets(kafka, postgres):
    messages = demo_messages(kafka, people=30, changes=120)
    publish(kafka, messages, partitions=2)
    expected = oracle_state(read_log(kafka))

    first = stream_until_idle(CDC_STREAM, resources(kafka, postgres))

    assert_matches_oracle(stored_state(postgres), expected)
    reported = materialisations(first)
    assert set(reported) == {"source_records", "identity_graph", "customer_profiles"}
    assert reported["source_records"]["events_read"] == len(messages)
    bounds = {(tp.topic, tp.partition): b for tp, b in
              kafka.offset_bounds(kafka.topics_matching(r"cdc\..*")).items()}
    assert covered(reported["source_records"]["offset_ranges"]) == {
        tp: [(begin, end)] for tp, (begin, end) in bounds.items() if end > begin}
    assert reported["customer_profiles"]["profiles_written"] == len(expected.profiles)
    lag = check_evaluations(first)["cdc_lag"]
    assert lag.passed and lag.metadata["lag_events"].value == 0

    # Nothing new: nothing reported again (the outbox rows were pruned behind the cursor).
    quiet = tick(CDC_STREAM, resources(kafka, postgres), cursor=first.cursor)
    assert materialisations(quiet) == {}


def test_stream_and_runs_share_the_ledger(kafka, postgres):
    first = demo_messages(kafka, people=20, changes=60, seed=3)
    publish(kafka, first, partitions=2)
    stream_until_idle(CDC_STREAM, resources(kafka, postgres))

    # A run asked for everything (a full set of ranges) applies nothing a second time ...
    ranges = [{"topic": tp.topic, "partition": tp.partition, "start": b, "end": e}
              for tp, (b, e) in kafka.offset_bounds(kafka.topics_matching(r"cdc\..*")).items()]
    run = materialize_customers(kafka, postgres, {"ops": {
        "source_records": {"config": {"ranges": ranges}},
        "identity_graph": {"config": {"rebuild": False}},
        "customer_profiles": {"config": {"rebuild": False}}}})
    assert metadata(run)["ranges_already_applied"] == len(ranges)
    assert metadata(run)["events_read"] == 0
    assert metadata(run)["offset_ranges"] == []  # the lineage names what a run applied

    # ... and what arrives next is the stream's again, still equal to the oracle.
    publish(kafka, demo_messages(kafka, people=25, changes=40, seed=4)[-40:], partitions=2)
    stream_until_idle(CDC_STREAM, resources(kafka, postgres))
    # Ids compared by cluster: micro-batches group changes differently from the oracle's single
    # pass (the identity queue's known limitation, docs/reliability.md).
    assert_matches_oracle(stored_state(postgres), oracle_state(read_log(kafka)), ids=False)


def test_a_micro_batch_whose_report_was_lost_is_reported_by_the_next_tick(kafka, postgres):
    from rag_assets.platform.micro_batch import MicroBatchSession

    publish(kafka, demo_messages(kafka, people=10, changes=20, seed=8), partitions=1)
    first = stream_until_idle(CDC_STREAM, resources(kafka, postgres))
    # A micro-batch committed by a worker that died before any tick reported it.
    with postgres.connection() as conn:
        session = MicroBatchSession(conn, CDC_STREAM.name, "stream-died")
        with session.transaction() as cur:
            session.record(cur, "source_records", {"events_read": 7, "offset_ranges": [
                {"topic": "t", "partition": 0, "start": 100, "end": 107}]})
    after = tick(CDC_STREAM, resources(kafka, postgres), cursor=first.cursor)
    reported = materialisations(after)["source_records"]
    assert reported["events_read"] == 7
    assert reported["offset_ranges"] == [{"topic": "t", "partition": 0, "start": 100, "end": 107}]


def test_topics_created_after_the_worker_started_are_streamed(kafka, postgres):
    stream_until_idle(CDC_STREAM, resources(kafka, postgres))  # no topic exists yet
    publish(kafka, demo_messages(kafka, people=10, changes=20, seed=9), partitions=2)
    expected = oracle_state(read_log(kafka))
    deadline = time.monotonic() + 60
    while stored_state(postgres).live_rows != expected.live_rows:  # topics are re-read every 5 s
        assert time.monotonic() < deadline, "the new topics were never streamed"
        tick(CDC_STREAM, resources(kafka, postgres))  # the heartbeat a running sensor gives
        time.sleep(0.5)
    reported = materialisations(stream_until_idle(CDC_STREAM, resources(kafka, postgres)))
    assert reported["source_records"]["events_read"] > 0
    assert_matches_oracle(stored_state(postgres), expected)


def test_a_catch_up_step_stops_between_transactions_when_asked(kafka, postgres):
    messages = demo_messages(kafka, people=30, changes=120, seed=6)
    publish(kafka, messages, partitions=2)
    expected = oracle_state(read_log(kafka))
    asked = []

    def keep_going() -> bool:  # the worker's "still wanted?": no once the first poll is in
        asked.append(True)
        return len(asked) < 2

    with postgres.connection() as conn:
        session = MicroBatchSession(conn, "cdc_stop_test", "stop-session")
        with closing(CdcMicroBatches(session, kafka, postgres, max_records=25,
                                     catch_up_events=10_000)) as batches:
            first = 0
            for _ in range(100):  # the first polls may come back empty while Kafka fetches
                asked.clear()
                if first := batches.step(keep_going):
                    break
            assert 0 < first <= 25  # one poll, not the backlog
            with session.transaction() as cur:
                cur.execute("SELECT count(*) FROM identity_pending")
                assert cur.fetchone()[0] > 0  # queued, not linked: the drains were asked too
                cur.execute("SELECT sum(end_offset - start_offset) FROM applied_offsets")
                assert cur.fetchone()[0] == first  # the ledger holds that poll and no more
            rest = first
            for _ in range(100):
                rest += batches.step()
                if rest == len(messages) and batches.step() == 0:
                    break

    assert rest == len(messages)
    assert_matches_oracle(stored_state(postgres), expected, ids=False)


def test_under_a_backlog_one_step_applies_many_polls_then_links_once(kafka, postgres):
    messages = demo_messages(kafka, people=30, changes=120, seed=5)
    publish(kafka, messages, partitions=2)
    expected = oracle_state(read_log(kafka))

    with postgres.connection() as conn:
        session = MicroBatchSession(conn, "cdc_catch_up_test", "catch-up-session")
        with closing(CdcMicroBatches(session, kafka, postgres, max_records=25,
                                     catch_up_events=10_000)) as batches:
            steps = []  # events read by each step that read any
            for _ in range(100):  # the first polls may come back empty while Kafka fetches
                if read := batches.step():
                    steps.append(read)
                if sum(steps) == len(messages):
                    break
            assert batches.step() == 0
        with session.transaction() as cur:
            rows = lineage_outbox.pending(cur, "cdc_catch_up_test")

    # Every full poll went into the first step; at most a short poll's worth came after it.
    assert sum(steps) == len(messages)
    assert steps[0] >= len(messages) - 25 and len(steps) <= 2
    assert_matches_oracle(stored_state(postgres), expected)
    polls = [r for r in rows if r.asset_key == "source_records"]
    assert len(polls) >= len(messages) // 25  # one transaction and ledger claim per poll ...
    # ... and the graph and profiles taken after the first step's polls, not between them.
    first_derived = min(r.id for r in rows if r.asset_key != "source_records")
    assert sum(1 for r in polls if r.id < first_derived) >= (len(messages) - 25) // 25


def test_two_workers_polling_the_same_offsets_report_each_offset_once(kafka, postgres):
    """An evicted group member still applying and the partition's new owner both poll the same
    records; the ledger applies them once and the lineage must say so, not report them twice."""
    messages = demo_messages(kafka, people=20, changes=80, seed=11)
    publish(kafka, messages, partitions=2)
    with postgres.connection() as conn_a, postgres.connection() as conn_b:
        sessions = [MicroBatchSession(conn_a, "overlap_test", "worker-a"),
                    MicroBatchSession(conn_b, "overlap_test", "worker-b")]
        # One poll per step, of different sizes: their ranges overlap in part.
        workers = [CdcMicroBatches(s, kafka, postgres, max_records=size, catch_up_events=size)
                   for s, size in zip(sessions, (15, 7))]
        try:
            applied = {s.run_id: 0 for s in sessions}
            for _ in range(400):  # each reads every partition, from the ledger's marks;
                for session, worker, polls in zip(sessions, workers, (1, 3)):  # b overtakes a
                    for _ in range(polls):
                        applied[session.run_id] += worker.step()
                if sum(applied.values()) == len(messages):
                    break
            assert sum(applied.values()) == len(messages), applied
            assert min(applied.values()) > 0, applied  # the premise: both took part
        finally:
            for worker in workers:
                worker.close()
        with sessions[0].transaction() as cur:
            rows = lineage_outbox.pending(cur, "overlap_test")
    reported = [(r["topic"], r["partition"], r["start"], r["end"]) for row in rows
                if row.asset_key == "source_records" for r in row.metadata["offset_ranges"]]
    offsets = [(topic, partition, offset) for topic, partition, start, end in reported
               for offset in range(start, end)]
    assert len(offsets) == len(set(offsets)) == len(messages)
