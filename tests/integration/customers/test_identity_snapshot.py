"""A linker keeps what it read of the identity graph between batches (`PostgresIdentityStore`
snapshot). The graph it writes must be the one an in-memory replay of the event log gives, also
when another linker writes between its batches or one of its own writes is rolled back; and
after `begin`, nothing a snapshot still holds may differ from the stored graph, whoever wrote it
(other linkers through the change log, or a write outside it)."""

from collections import defaultdict

import pytest
from dagster import materialize

from rag_assets.customers import identity_linking, profile_refresh
from rag_assets.customers.assets import source_records
from rag_assets.customers.identity_graph import Edge
from rag_assets.customers.identity_store import PostgresIdentityStore
from rag_assets.customers.source_state import RecordKey
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


def _stale_entries(store: PostgresIdentityStore, postgres) -> list[str]:
    """What the store's snapshot holds, after `begin`, that the stored graph does not say.
    White-box: the snapshot's dictionaries against the tables read directly."""
    with postgres.transaction() as cur:
        store.begin(cur)
        fresh = PostgresIdentityStore(cur)
        cur.execute("SELECT a_key, b_key, rule, score FROM identity_edges")
        edges = defaultdict(set)
        for a, b, rule, score in cur.fetchall():
            edge = Edge(RecordKey.parse(a), RecordKey.parse(b), rule, score)
            edges[edge.a].add(edge)
            edges[edge.b].add(edge)
        cur.execute("SELECT customer_id, record_key FROM customer_assignments")
        members = defaultdict(set)
        for customer_id, key in cur.fetchall():
            members[customer_id].add(RecordKey.parse(key))
        cur.execute('SELECT kind, value, record_key FROM identity_lookup'
                    ' ORDER BY kind, value, record_key COLLATE "C"')
        lookups = defaultdict(list)
        for kind, value, key in cur.fetchall():
            lookups[(kind, value)].append(RecordKey.parse(key))
        nodes = fresh.nodes(store._nodes)
        customers = fresh.customer_ids(store._customer)
        ranks = fresh.customer_id_ranks(store._ranks)
        stale = [f"node {k}" for k, n in store._nodes.items() if nodes.get(k) != n]
        stale += [f"edges {k}" for k, e in store._edges.items() if edges.get(k, set()) != e]
        stale += [f"customer of {k}" for k, c in store._customer.items() if customers.get(k) != c]
        stale += [f"members {c}" for c, m in store._members.items() if members.get(c, set()) != m]
        stale += [f"rank {c}" for c, r in store._ranks.items() if ranks.get(c) != r]
        stale += [f"lookup {p}" for p, keys in store._lookups.items()
                  if lookups.get(p, [])[:store._lookup_limit] != keys]
        return stale


def test_linkers_taking_turns_keep_no_stale_entry(kafka, postgres):
    _apply_source_records(kafka, postgres)
    stores = [PostgresIdentityStore() for _ in range(3)]
    turns = 0
    while any([_link(postgres, store) for store in stores]):
        turns += 1
        if turns % 3 == 0:
            for store in stores:
                assert _stale_entries(store, postgres) == []
    assert turns > 6
    # The check has something to check: the stores kept entries the others did not change.
    assert all(len(store._nodes) > 20 for store in stores)
    _finish_and_compare(kafka, postgres)


def test_a_write_outside_the_change_log_makes_every_store_forget(kafka, postgres):
    _apply_source_records(kafka, postgres)
    store = PostgresIdentityStore()
    while _link(postgres, store):
        pass
    remembered = [k for k, n in store._nodes.items() if n is not None]
    assert remembered
    with postgres.transaction() as cur:  # as a rebuild or an erasure would, unlogged
        cur.execute("UPDATE identity_nodes SET identity = jsonb_set(identity, '{surname}',"
                    " '\"Renamed\"')")
    with postgres.transaction() as cur:
        store.begin(cur)
        assert {n.identity.surname for n in store.nodes(remembered).values()} == {"Renamed"}
    assert _stale_entries(store, postgres) == []
