"""Profiles rebuilt by two processes at once (`drain_in_processes`, as `customer_profiles` does
when many customers are queued) end as the event log says, each customer rebuilt once."""

from functools import partial

import pytest

from rag_assets.customers import profile_refresh
from rag_assets.platform.db import drain_in_processes
from tests.integration.customers.helpers import (
    assert_matches_oracle,
    catch_up,
    demo_messages,
    oracle_state,
    publish,
    read_log,
    stored_state,
)

pytestmark = pytest.mark.integration


def test_two_processes_rebuild_every_profile_once_and_as_the_oracle_says(kafka, postgres):
    publish(kafka, demo_messages(kafka, people=150, changes=300), partitions=2)
    catch_up(kafka, postgres)
    with postgres.transaction() as cur:
        cur.execute("TRUNCATE customer_profiles")
        profile_refresh.queue_every_customer(cur)
        cur.execute("SELECT count(*) FROM profile_pending")
        queued = cur.fetchone()[0]
    assert queued > 100

    # Small batches, so that the spawned helper (a second or so to start) finds work left.
    parts = drain_in_processes(postgres, partial(profile_refresh.refresh_batch, limit=3),
                               profile_refresh.RefreshStats, processes=2)

    assert len(parts) == 2
    total = profile_refresh.RefreshStats.total(parts)
    assert total.profiles_written + total.profiles_removed == queued  # each customer once
    with postgres.transaction() as cur:
        cur.execute("SELECT count(*) FROM profile_pending")
        assert cur.fetchone()[0] == 0
    assert_matches_oracle(stored_state(postgres), oracle_state(read_log(kafka)))


def test_the_profiles_asset_uses_a_second_process_only_for_a_long_queue(kafka, postgres):
    publish(kafka, demo_messages(kafka, people=40, changes=50), partitions=1)
    (run,) = catch_up(kafka, postgres)
    meta = run.asset_materializations_for_node("customer_profiles")[0].metadata
    # Far fewer than PARALLEL_FROM customers queued: one process took them all.
    assert len(meta["profiles_taken_by_process"].value) == 1
