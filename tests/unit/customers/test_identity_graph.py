"""The incremental identity graph: linking, merging, splitting and stable customer ids."""

from __future__ import annotations

import random

import pytest

from rag_assets.customers.cdc_events import ChangeEvent, KafkaPosition
from rag_assets.customers.identity_graph import (
    ClusterEvent,
    IdentityGraph,
    InMemoryIdentityStore,
    mint_customer_id,
    node_from_record,
)
from rag_assets.customers.source_state import RecordKey, SourceState

SALLY_CRM = {
    "id": 1,
    "first_name": "Sally",
    "last_name": "Thomas",
    "email": "sally@acme.com",
    "phone": "020 7946 0018",
    "date_of_birth": "1985-03-12",
    "address_line1": "12 Baker Street",
    "city": "London",
    "postcode": "NW1 6XE",
    "country": "GB",
    "national_id": None,
}
SALLY_BOOKING = {
    "id": 7,
    "customer_email": "SALLY@acme.com",
    "passenger_first_name": "Sally",
    "passenger_last_name": "Thomas",
    "phone": None,
    "flight_no": "BA117",
}
SALLY_LOYALTY = {
    "id": 3,
    "member_number": "LX-1",
    "full_name": "Sally Thomas",
    "email": "s.thomas@home.net",
    "phone": "+44 20 7946 0018",
    "tier": "gold",
    "date_of_birth": "12/03/1985",
}
SALLY_TICKET = {
    "id": 9,
    "customer_email": "sally.t@work.example",
    "customer_phone": None,
    "customer_name": "Sally Thomas",
    "subject": "refund",
    "status": "open",
}
BOB_CRM = {
    "id": 2,
    "first_name": "Bob",
    "last_name": "Jones",
    "email": "bob@jones.org",
    "phone": "020 7946 0999",
    "date_of_birth": "1970-01-01",
    "address_line1": "1 High Street",
    "city": "Leeds",
    "postcode": "LS1 1AA",
    "country": "GB",
    "national_id": "QQ123456C",
}

TABLES = {"crm": "customers", "booking": "bookings", "loyalty": "members", "support": "tickets"}


class Pipeline:
    """Source state + identity graph, fed with change events in batches."""

    def __init__(self):
        self.state = SourceState()
        self.store = InMemoryIdentityStore()
        self.graph = IdentityGraph(self.store)
        self.deltas = []

    def apply(self, events):
        changes = self.state.apply(events)
        node_changes = [node_from_record(r) for r in changes.transitions]
        delta = self.graph.apply([c for c in node_changes if c is not None])
        self.store.apply(delta)
        self.deltas.append(delta)
        return delta

    def customer(self, system, pk):
        return self.store.assignments.get(RecordKey(system, TABLES[system], str(pk)))


_clock = iter(range(1_000, 10**9, 10))


def event(system, row, op="u", ts=None):
    ts = ts if ts is not None else next(_clock)
    return ChangeEvent(
        system,
        TABLES[system],
        str(row["id"]),
        op,
        row,
        ts,
        ts,
        ts,
        KafkaPosition(f"cdc.{system}.{TABLES[system]}", 0, 0),
    )


def test_records_sharing_an_email_are_one_customer():
    p = Pipeline()
    p.apply(
        [
            event("crm", SALLY_CRM, "c"),
            event("booking", SALLY_BOOKING, "c"),
            event("crm", BOB_CRM, "c"),
        ]
    )
    assert p.customer("crm", 1) == p.customer("booking", 7)
    assert p.customer("crm", 2) != p.customer("crm", 1)
    edges = {(e.rule, e.score) for e in p.store.edges()}
    assert ("same_email", 1.0) in edges


def test_phone_and_fuzzy_name_dob_link_the_loyalty_member():
    p = Pipeline()
    p.apply([event("crm", SALLY_CRM, "c"), event("loyalty", SALLY_LOYALTY, "c")])
    assert p.customer("crm", 1) == p.customer("loyalty", 3)
    rules = {e.rule for e in p.store.edges()}
    assert rules == {"same_phone", "fuzzy_person"}
    fuzzy = next(e for e in p.store.edges() if e.rule == "fuzzy_person")
    assert 0.5 <= fuzzy.score <= 1.0


def test_name_alone_never_links():
    p = Pipeline()
    p.apply([event("crm", SALLY_CRM, "c"), event("support", SALLY_TICKET, "c")])
    assert p.customer("crm", 1) != p.customer("support", 9)


def test_first_record_founds_the_customer_id_and_newcomers_join_it():
    p = Pipeline()
    p.apply([event("crm", SALLY_CRM, "c")])
    founder_id = p.customer("crm", 1)
    assert founder_id == mint_customer_id(RecordKey("crm", "customers", "1"))
    p.apply([event("booking", SALLY_BOOKING, "c")])
    assert p.customer("booking", 7) == founder_id
    assert p.deltas[-1].assignments == {RecordKey("booking", "bookings", "7"): founder_id}


def test_merge_keeps_the_oldest_id_and_records_the_other_as_merged():
    p = Pipeline()
    p.apply([event("crm", SALLY_CRM, "c")])
    p.apply([event("support", SALLY_TICKET, "c")])
    crm_id, ticket_id = p.customer("crm", 1), p.customer("support", 9)
    assert crm_id != ticket_id
    # A booking made with both addresses bridges the two.
    bridge = {**SALLY_BOOKING, "customer_email": "sally.t@work.example", "phone": "020 7946 0018"}
    delta = p.apply([event("booking", bridge, "c")])
    assert {p.customer("crm", 1), p.customer("support", 9), p.customer("booking", 7)} == {crm_id}
    assert ClusterEvent("merged", ticket_id, crm_id) in delta.events
    assert p.store.clusters() == {
        crm_id: {
            RecordKey("crm", "customers", "1"),
            RecordKey("support", "tickets", "9"),
            RecordKey("booking", "bookings", "7"),
        }
    }


def test_removing_the_only_link_splits_and_the_oldest_part_keeps_the_id():
    p = Pipeline()
    bridge = {**SALLY_BOOKING, "customer_email": "sally.t@work.example", "phone": "020 7946 0018"}
    p.apply([event("crm", SALLY_CRM, "c")])
    p.apply([event("support", SALLY_TICKET, "c"), event("booking", bridge, "c")])
    original = p.customer("crm", 1)
    assert p.customer("support", 9) == original
    # The booking's contact details are corrected: it no longer touches the ticket's email.
    delta = p.apply([event("booking", {**bridge, "customer_email": "sally@acme.com"}, "u")])
    assert p.customer("crm", 1) == p.customer("booking", 7) == original
    split_id = p.customer("support", 9)
    assert split_id != original
    assert split_id == mint_customer_id(RecordKey("support", "tickets", "9"))
    assert ClusterEvent("split", split_id, original) in delta.events


def test_deleting_the_bridge_splits_and_undoing_restores_the_old_ids():
    p = Pipeline()
    bridge = {**SALLY_BOOKING, "customer_email": "sally.t@work.example", "phone": "020 7946 0018"}
    p.apply([event("crm", SALLY_CRM, "c")])
    p.apply([event("support", SALLY_TICKET, "c")])
    crm_id, ticket_id = p.customer("crm", 1), p.customer("support", 9)
    p.apply([event("booking", bridge, "c")])
    p.apply([event("booking", {"id": 7}, "d")])
    assert (p.customer("crm", 1), p.customer("support", 9)) == (crm_id, ticket_id)
    assert p.customer("booking", 7) is None
    assert not any(RecordKey("booking", "bookings", "7") in (e.a, e.b) for e in p.store.edges())


def test_deleting_the_founding_record_keeps_the_customer_id():
    p = Pipeline()
    p.apply([event("crm", SALLY_CRM, "c")])
    founder_id = p.customer("crm", 1)
    p.apply([event("booking", SALLY_BOOKING, "c"), event("loyalty", SALLY_LOYALTY, "c")])
    p.apply([event("crm", {"id": 1}, "d")])
    # booking and loyalty no longer share anything: the older keeps the id.
    assert p.customer("booking", 7) == founder_id
    assert p.customer("loyalty", 3) != founder_id


def test_deleting_every_record_retires_the_customer():
    p = Pipeline()
    p.apply([event("crm", BOB_CRM, "c")])
    bob = p.customer("crm", 2)
    delta = p.apply([event("crm", {"id": 2}, "d")])
    assert ClusterEvent("retired", bob) in delta.events
    assert p.store.clusters() == {}


def test_unchanged_redelivery_changes_nothing():
    p = Pipeline()
    events = [event("crm", SALLY_CRM, "c"), event("booking", SALLY_BOOKING, "c")]
    p.apply(events)
    before = (dict(p.store.assignments), p.store.edges())
    delta = p.apply(events)
    assert (delta.assignments, delta.edges_added, delta.edges_removed, delta.events) == (
        {},
        set(),
        set(),
        [],
    )
    assert (dict(p.store.assignments), p.store.edges()) == before


def test_an_identifier_shared_by_too_many_records_links_nothing():
    from rag_assets.customers.matching import MatchRules

    p = Pipeline()
    p.graph = IdentityGraph(p.store, MatchRules(max_identifier_group=3))
    rows = [
        {
            "id": n,
            "customer_email": "noreply@airline.example",
            "passenger_first_name": f"P{n}",
            "passenger_last_name": f"Person{n}",
            "phone": None,
        }
        for n in range(5)
    ]
    p.apply([event("booking", row, "c") for row in rows])
    assert len(set(p.store.assignments.values())) >= 3


def test_delta_touches_only_the_neighbourhood():
    p = Pipeline()
    p.apply([event("crm", BOB_CRM, "c"), event("crm", SALLY_CRM, "c")])
    delta = p.apply([event("booking", SALLY_BOOKING, "c")])
    assert RecordKey("crm", "customers", "2") not in delta.assignments
    assert delta.affected_customer_ids == {p.customer("crm", 1)}


# --- property-style: ids do not depend on batching ------------------------------------------


def random_people_events(rng: random.Random, n_events: int):
    """Records of a few people across systems, with updates that add and remove links."""
    emails = [f"person{i}@example.com" for i in range(4)]
    phones = [f"020 7946 {1000 + i}" for i in range(4)]
    events, ts = [], 1000
    live = {}
    for _ in range(n_events):
        ts += rng.choice([1, 3])
        system = rng.choice(["crm", "booking", "support"])
        pk = rng.randint(1, 4)
        key = (system, pk)
        if key in live and rng.random() < 0.15:
            events.append(event(system, {"id": pk}, "d", ts))
            del live[key]
            continue
        email, phone = rng.choice(emails + [None]), rng.choice(phones + [None])
        row = {
            "crm": {
                "id": pk,
                "first_name": "A",
                "last_name": f"N{pk}",
                "email": email,
                "phone": phone,
            },
            "booking": {
                "id": pk,
                "customer_email": email,
                "phone": phone,
                "passenger_first_name": "A",
                "passenger_last_name": f"B{pk}",
            },
            "support": {
                "id": pk,
                "customer_email": email,
                "customer_phone": phone,
                "customer_name": f"C {pk}",
            },
        }[system]
        events.append(event(system, row, "u" if key in live else "c", ts))
        live[key] = row
    return events


def final_ids(pipeline):
    return dict(pipeline.store.assignments)


@pytest.mark.parametrize("seed", range(25))
def test_customer_ids_do_not_depend_on_batching(seed):
    rng = random.Random(seed)
    events = random_people_events(rng, 60)
    all_at_once = Pipeline()
    all_at_once.apply(events)
    one_by_one = Pipeline()
    for e in events:
        one_by_one.apply([e])
    batched, i = Pipeline(), 0
    while i < len(events):
        size = rng.randint(2, 9)
        batched.apply(events[i : i + size])
        i += size
    assert final_ids(one_by_one) == final_ids(all_at_once) == final_ids(batched)
    assert one_by_one.store.edges() == all_at_once.store.edges() == batched.store.edges()


@pytest.mark.parametrize("seed", range(10))
def test_clusters_are_the_connected_components_of_the_edges(seed):
    rng = random.Random(seed)
    p = Pipeline()
    events = random_people_events(rng, 80)
    for i in range(0, len(events), 7):
        p.apply(events[i : i + 7])
    parent = {k: k for k in p.store.assignments}

    def find(k):
        while parent[k] != k:
            k = parent[k]
        return k

    for edge in p.store.edges():
        parent[find(edge.a)] = find(edge.b)
    for a in parent:
        for b in parent:
            assert (find(a) == find(b)) == (p.store.assignments[a] == p.store.assignments[b])


def test_a_nodes_blocking_keys_are_computed_once_and_take_no_part_in_equality():
    from rag_assets.customers.identity_graph import IdentityNode
    from rag_assets.customers.matching import blocking_keys

    change = node_from_record(next(iter(SourceState().apply([event("crm", SALLY_CRM, op="c")]).transitions)))
    node = change.node
    fresh = IdentityNode(node.key, node.identity, node.first_seen)
    assert node.blocking_keys == blocking_keys(node.identity)
    assert node.blocking_keys is node.blocking_keys  # cached, not recomputed
    assert node == fresh and hash(node) == hash(fresh)  # the cache is not a field
    assert repr(node) == repr(fresh)


def test_equal_identities_in_one_batch_are_scored_once(monkeypatch):
    from rag_assets.customers import identity_graph

    calls = []  # one entry per scored pair, whether scored ahead for the batch or on demand
    score_pairs, score_candidates = identity_graph.score_pairs, identity_graph.score_candidates

    def counting_pairs(keys, other_keys, rules):
        calls.extend(zip(keys, other_keys))
        return score_pairs(keys, other_keys, rules)

    def counting_candidates(key, other_keys, rules):
        calls.extend((key, other) for other in other_keys)
        return score_candidates(key, other_keys, rules)

    monkeypatch.setattr(identity_graph, "score_pairs", counting_pairs)
    monkeypatch.setattr(identity_graph, "score_candidates", counting_candidates)
    pipeline = Pipeline()
    # Three CRM rows of one person without contact details carry equal identities: the second
    # and third compare the same pair of values with the earlier ones.
    rows = [{**SALLY_CRM, "id": pk, "email": None, "phone": None} for pk in (1, 2, 3)]
    pipeline.apply([event("crm", row, op="c") for row in rows])
    assert len(calls) == 1
    separately = Pipeline()
    for row in rows:
        separately.apply([event("crm", row, op="c")])
    assert {separately.customer("crm", pk) for pk in (1, 2, 3)} == {
        pipeline.customer("crm", pk) for pk in (1, 2, 3)}
    assert len({pipeline.customer("crm", pk) for pk in (1, 2, 3)}) == 1  # fuzzy-linked


def test_records_that_cannot_reach_the_fuzzy_threshold_are_never_compared(monkeypatch):
    """Bookings carry names and contact details only: names alone cannot link, so bookings are
    filed under no blocking key and link by their identifiers only."""
    from rag_assets.customers import identity_graph

    scored = []
    score_pairs = identity_graph.score_pairs
    monkeypatch.setattr(identity_graph, "score_pairs",
                        lambda keys, others, rules: scored.extend(keys) or score_pairs(keys, others, rules))
    pipeline = Pipeline()
    bookings = [{**SALLY_BOOKING, "id": pk, "customer_email": None} for pk in (7, 8)]
    pipeline.apply([event("booking", row, op="c") for row in bookings]
                   + [event("booking", {**SALLY_BOOKING, "id": 9}, op="c"),
                      event("crm", SALLY_CRM, op="c")])
    assert scored == []
    assert pipeline.customer("booking", 9) == pipeline.customer("crm", 1)  # same e-mail
    assert pipeline.customer("booking", 7) != pipeline.customer("booking", 8)


@pytest.mark.parametrize("seed", range(25))
def test_skipping_unchanged_clusters_gives_the_same_deltas_as_recomputing(seed, monkeypatch):
    """A relinked record that keeps its age and its neighbours does not recompute clusters;
    every delta (assignments, events, profiles to rebuild) must be what recomputing gives."""
    from rag_assets.customers import identity_graph

    rng = random.Random(seed)
    events = random_people_events(rng, 80)
    sizes = [rng.randint(1, 9) for _ in range(len(events))]

    def run():
        pipeline, i = Pipeline(), 0
        for size in sizes:
            if i >= len(events):
                break
            pipeline.apply(events[i : i + size])
            i += size
        return pipeline

    skipping = run()
    with monkeypatch.context() as patched:
        patched.setattr(identity_graph, "_neighbours", lambda overlay, key: object())  # never equal
        recomputing = run()
    for fast, full in zip(skipping.deltas, recomputing.deltas, strict=True):
        assert fast.assignments == full.assignments
        assert fast.unassigned == full.unassigned
        assert fast.events == full.events
        assert fast.new_customer_ids == full.new_customer_ids
        assert fast.affected_customer_ids == full.affected_customer_ids
        assert fast.edges_added == full.edges_added and fast.edges_removed == full.edges_removed
    assert skipping.store.history == recomputing.store.history


def test_an_update_that_keeps_the_neighbours_skips_the_cluster_recomputation(monkeypatch):
    p = Pipeline()
    p.apply([event("crm", SALLY_CRM, "c"), event("booking", SALLY_BOOKING, "c")])
    recomputed = []
    real = IdentityGraph._assign_customer_ids
    monkeypatch.setattr(IdentityGraph, "_assign_customer_ids",
                        lambda self, *a: recomputed.append(a) or real(self, *a))
    delta = p.apply([event("crm", {**SALLY_CRM, "city": "Londres"})])  # still linked by email
    assert recomputed == []
    assert delta.affected_customer_ids == {p.customer("crm", 1)}
    assert not delta.events and not delta.assignments
