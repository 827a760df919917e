"""At-least-once delivery through real Kafka and PostgreSQL: keys interleaved across partitions,
redelivered events and ranges, overlapping range requests, any batching — the state always
equals the oracle's, and customer ids do not depend on batching or on a full rebuild."""

import random

import pytest

from tests.integration.customers.helpers import (
    assert_matches_oracle,
    catch_up,
    demo_messages,
    materialize_customers,
    metadata,
    oracle_state,
    other_schema,
    publish,
    read_log,
    sensor_tick,
    stored_state,
)

pytestmark = pytest.mark.integration


def interleaved_with_redeliveries(messages, seed=5):
    """A random interleaving of the keys' streams (per-key order kept, as Kafka guarantees),
    then a third of the messages delivered again, in their original order, at the end."""
    rng = random.Random(seed)
    streams: dict = {}
    for m in messages:
        streams.setdefault((m.topic, m.key), []).append(m)
    queues = list(streams.values())
    out = []
    while queues:
        queue = rng.choice(queues)
        out.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    redelivered = [m for m in messages if rng.random() < 0.33]
    return out + redelivered


def test_interleaved_and_redelivered_events_in_any_batching_match_the_oracle(kafka, postgres):
    messages = interleaved_with_redeliveries(demo_messages(kafka, people=40, changes=150))
    publish(kafka, messages, partitions=3)
    expected = oracle_state(read_log(kafka))

    # Small batches: many runs, each range its own transaction.
    runs = catch_up(kafka, postgres, max_per_partition=40)
    assert len(runs) >= 3
    totals = {k: sum(metadata(r)[k] for r in runs)
              for k in ("events_read", "duplicates_skipped", "stale_skipped", "dead_letters")}
    assert totals["events_read"] == len(messages)
    assert totals["dead_letters"] == 0
    assert totals["duplicates_skipped"] + totals["stale_skipped"] > 0
    small_batches = stored_state(postgres)
    assert_matches_oracle(small_batches, expected)

    # One run for everything, in a schema of its own: the same ids.
    with other_schema(postgres) as fresh:
        (run,) = catch_up(kafka, fresh)
        assert metadata(run)["events_read"] == len(messages)
        assert stored_state(fresh).assignments == small_batches.assignments
        assert stored_state(fresh).profiles == small_batches.profiles

    # A full rebuild (earliest retained offsets, graph relinked from scratch): the same ids.
    rebuilt = materialize_customers(kafka, postgres)
    assert metadata(rebuilt)["mode"] == "rebuild"
    assert metadata(rebuilt, "identity_graph")["mode"] == "rebuild"
    assert stored_state(postgres).assignments == small_batches.assignments
    assert_matches_oracle(stored_state(postgres), expected)


def test_overlapping_and_repeated_range_requests_apply_each_event_once(kafka, postgres):
    publish(kafka, demo_messages(kafka, people=15, changes=40), partitions=1)
    tick = sensor_tick(kafka, postgres)
    (request,) = tick.run_requests
    ranges = request.run_config["ops"]["source_records"]["config"]["ranges"]

    def with_ranges(new_ranges):
        config = {**request.run_config, "ops": {**request.run_config["ops"]}}
        config["ops"]["source_records"] = {"config": {"ranges": new_ranges}}
        return config

    halves = [{**r, "end": r["start"] + (r["end"] - r["start"]) // 2} for r in ranges]
    first = materialize_customers(kafka, postgres, with_ranges(halves))
    assert metadata(first)["events_read"] == sum(r["end"] - r["start"] for r in halves)

    # The full ranges overlap what was applied: only the uncovered second halves are read.
    second = materialize_customers(kafka, postgres, request.run_config)
    assert metadata(second)["events_read"] == sum(r["end"] - h["end"] for r, h in zip(ranges, halves))
    state = stored_state(postgres)

    # The same request again (a duplicated run): nothing read, nothing changed.
    third = materialize_customers(kafka, postgres, request.run_config)
    assert metadata(third)["events_read"] == 0
    assert metadata(third)["ranges_already_applied"] == len(ranges)
    assert metadata(third, "identity_graph")["records_linked"] == 0
    assert metadata(third, "customer_profiles")["profiles_written"] == 0
    assert stored_state(postgres) == state
    assert_matches_oracle(state, oracle_state(read_log(kafka)))

    # The sensor knows everything is applied.
    assert not sensor_tick(kafka, postgres, tick.cursor).run_requests
