"""A linker keeps what it read of the identity graph between batches (`PostgresIdentityStore`
snapshot). The graph it writes must be the one an in-memory replay of the event log gives, also
when another linker writes between its batches or one of its own writes is rolled back."""

import pytest
from dagster import materialize

from rag_assets.customers import identity_linking, profile_refresh
from rag_assets.customers.assets import source_records
from rag_assets.customers.identity_store import PostgresIdentityStore
from rag_assets.platform.db import drain
from tests.integration.customers.helpers import (
    assert_matches_oracle,
    demo_messages,
    oracle_graph,
    oracle_state,
    publish,
    read_log,
    stored_edges,
    stored_state,
)

pytestmark = pytest.mark.integration

BATCH = 6  # small batches: many chances for a stale snapshot to show


class RolledBack(Exception):
    pass


def _apply_source_records(kafka, postgres) -> None:
    publish(kafka, demo_messages(kafka, people=40, changes=150))
    assert materialize([source_records], resources={"kafka": kafka, "postgres": postgres}).success


def _link(postgres, store: PostgresIdentityStore) -> int:
    with postgres.transaction() as cur:
        return identity_linking.link_batch(cur, identity_linking.LinkStats(), limit=BATCH,
                                           store=store)


def _finish_and_compare(kafka, postgres) -> None:
    drain(postgres, lambda cur: profile_refresh.refresh_batch(cur, profile_refresh.RefreshStats()))
    events = read_log(kafka)
    assert_matches_oracle(stored_state(postgres), oracle_state(events))
    _, graph = oracle_graph(events)
    assert stored_edges(postgres) == {(str(e.a), str(e.b), e.rule) for e in graph.edges()}


def test_one_store_across_many_batches_gives_the_replayed_graph(kafka, postgres):
    _apply_source_records(kafka, postgres)
    store = PostgresIdentityStore()
    batches = 0
    while _link(postgres, store):
        batches += 1
    assert batches > 20
    _finish_and_compare(kafka, postgres)


def test_a_store_forgets_what_another_linker_changed(kafka, postgres):
    _apply_source_records(kafka, postgres)
    mine, theirs = PostgresIdentityStore(), PostgresIdentityStore()
    while _link(postgres, mine) + _link(postgres, theirs):
        pass
    _finish_and_compare(kafka, postgres)


def test_a_store_forgets_its_own_rolled_back_write(kafka, postgres):
    _apply_source_records(kafka, postgres)
    store = PostgresIdentityStore()
    for _ in range(3):
        _link(postgres, store)
    for _ in range(3):  # linked, then rolled back: the records stay pending
        with pytest.raises(RolledBack):
            with postgres.transaction() as cur:
                identity_linking.link_batch(cur, identity_linking.LinkStats(), limit=BATCH,
                                            store=store)
                raise RolledBack
    while _link(postgres, store):
        pass
    _finish_and_compare(kafka, postgres)
