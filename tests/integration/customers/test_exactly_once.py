"""Kill-and-retry, exactly once in effect: the customer assets run for a range in a subprocess,
which is SIGKILLed part-way (once while applying CDC ranges, once while linking identities);
the same range is then run again to completion. The final state — live source records,
customer assignments, profiles — equals the oracle computed in memory from the event log, and
no event was applied twice (ledger and version history agree)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.integration.customers.helpers import (
    assert_matches_oracle,
    demo_messages,
    metadata,
    materialize_customers,
    oracle_state,
    publish,
    read_log,
    sensor_tick,
    stored_state,
)

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).with_name("materialize_range.py")
ROOT = Path(__file__).resolve().parents[3]


def start_run(kafka, postgres, run_config) -> subprocess.Popen:
    settings = {
        "kafka_topic_prefix": kafka.topic_prefix,
        "postgres": {"host": postgres.host, "port": postgres.port, "user": postgres.user,
                     "password": postgres.password, "database": postgres.database,
                     "db_schema": postgres.db_schema},
        "run_config": run_config,
    }
    return subprocess.Popen([sys.executable, str(SCRIPT), json.dumps(settings)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def count(postgres, query) -> int | None:
    """A count from a connection of its own; None while the tables do not exist yet."""
    try:
        with postgres.transaction() as cur:
            cur.execute(query)
            return cur.fetchone()[0]
    except psycopg.errors.UndefinedTable:
        return None


def kill_when(process, postgres, query, predicate, timeout_s=240.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run finished before it could be killed part-way"
        value = count(postgres, query)
        if value is not None and predicate(value):
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the run never reached the kill point")


def test_a_run_killed_part_way_and_retried_applies_every_event_once(kafka, postgres):
    messages = demo_messages(kafka, people=700, changes=2500, seed=3)
    publish(kafka, messages, partitions=3)
    (request,) = sensor_tick(kafka, postgres).run_requests
    ranges = request.run_config["ops"]["source_records"]["config"]["ranges"]
    assert len(ranges) == 12 and sum(r["end"] - r["start"] for r in ranges) == len(messages)

    # 1. Killed while applying the CDC ranges: some ranges committed, the rest not.
    first = start_run(kafka, postgres, request.run_config)
    kill_when(first, postgres, "SELECT count(*) FROM applied_offsets", lambda n: n >= 2)
    applied = count(postgres, "SELECT count(*) FROM applied_offsets")
    assert 2 <= applied < len(ranges)

    # 2. The same range again, killed while the identity graph is being linked (CDC done,
    #    some records linked and committed, others still pending).
    second = start_run(kafka, postgres, request.run_config)
    kill_when(second, postgres,
              "SELECT CASE WHEN EXISTS (SELECT 1 FROM customer_assignments)"
              " AND (SELECT count(*) FROM applied_offsets) = 12 THEN 1 ELSE 0 END",
              lambda n: n == 1)
    assert count(postgres, "SELECT count(*) FROM identity_pending") > 0

    # 3. The same range a third time, to completion (here in process, for its metadata).
    done = materialize_customers(kafka, postgres, request.run_config)
    meta = metadata(done)
    assert meta["ranges_already_applied"] == len(ranges)
    assert meta["events_read"] == 0
    assert count(postgres, "SELECT count(*) FROM identity_pending") == 0
    assert count(postgres, "SELECT count(*) FROM profile_pending") == 0

    state = stored_state(postgres)
    expected = oracle_state(read_log(kafka))
    assert_matches_oracle(state, expected)

    # Every partition's ledger is exactly the requested range, as one contiguous row.
    with postgres.transaction() as cur:
        cur.execute("SELECT topic, partition, start_offset, end_offset FROM applied_offsets")
        ledger = {(t, p): (s, e) for t, p, s, e in cur.fetchall()}
    assert ledger == {(r["topic"], r["partition"]): (r["start"], r["end"]) for r in ranges}

    # And a fourth request of the same range changes nothing.
    again = materialize_customers(kafka, postgres, request.run_config)
    assert metadata(again)["events_read"] == 0
    assert stored_state(postgres) == state
