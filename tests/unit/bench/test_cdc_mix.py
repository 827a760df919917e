"""The freshness bench's realistic CDC mix: its expectations agree with an oracle built from
the rows alone (records sharing an e-mail, phone or loyalty number are one customer), and the
product's identity graph, fed the same changes, ends in exactly those customers."""

from __future__ import annotations

from datetime import date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.cdc_mix import REALISTIC_KINDS, Expectation, RealisticCdc, record_key
from rag_assets.customers.cdc_events import ChangeEvent, KafkaPosition
from rag_assets.customers.identity_graph import IdentityGraph, InMemoryIdentityStore, node_from_record
from rag_assets.customers.source_state import SourceState

IDENTIFYING = ("email", "customer_email", "phone", "member_number")


def oracle_customers(rows) -> dict[str, frozenset[str]]:
    """record key -> the records it shares a customer with: connected components of records
    joined by an equal identifying value (union-find over the rows; no product code)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    holders: dict[str, str] = {}
    for (table, pk), row in rows.items():
        key = record_key(table, pk)
        find(key)
        for column in IDENTIFYING:
            if row.get(column):
                value = str(row[column]).lower()
                if value in holders:
                    parent[find(key)] = find(holders[value])
                else:
                    holders[value] = key
    groups: dict[str, set[str]] = {}
    for key in parent:
        groups.setdefault(find(key), set()).add(key)
    return {key: frozenset(group) for group in groups.values() for key in group}


def oracle_profiles(mix: RealisticCdc, refs) -> dict[str, dict | None]:
    """What a look-up would return per the oracle: the customer's record keys, and points."""
    rows = mix.current_rows()
    customers = oracle_customers(rows)
    by_value = {str(row[c]).lower(): record_key(t, pk)
                for (t, pk), row in rows.items() for c in IDENTIFYING if row.get(c)}
    found = {}
    for ref in refs:
        anchor = ref if ref in customers else by_value.get(ref.lower())
        if anchor is None:
            found[ref] = None
            continue
        members = customers[anchor]
        member_rows = [rows[(t, pk)] for (t, pk) in rows if record_key(t, pk) in members]
        points = max((r.get("points") or 0 for r in member_rows), default=0)
        found[ref] = {"sources": sorted(members), "golden": {"loyalty": {"points": points}},
                      "text": " ".join(str(v) for r in member_rows for v in r.values())}
    return found


def _event(change, clock: int) -> ChangeEvent:
    row = change.after if change.op != "d" else change.before
    plain = {k: v.isoformat() if isinstance(v, (date, datetime)) else v for k, v in row.items()}
    return ChangeEvent(change.system, change.table, str(change.pk), change.op, plain,
                       clock, clock, clock, KafkaPosition(f"cdc.{change.system}.{change.table}", 0, 0))


class Pipeline:
    """The product's pure linking path: source state, then the incremental identity graph."""

    def __init__(self) -> None:
        self.state, self.store = SourceState(), InMemoryIdentityStore()
        self.graph, self.clock = IdentityGraph(self.store), 1_000

    def apply(self, changes) -> None:
        events = []
        for change in changes:
            self.clock += 10
            events.append(_event(change, self.clock))
        transitions = self.state.apply(events).transitions
        nodes = [n for n in (node_from_record(r) for r in transitions) if n is not None]
        self.store.apply(self.graph.apply(nodes))

    def customers(self) -> dict[str, frozenset[str]]:
        groups: dict[str, set[str]] = {}
        for key, customer in self.store.assignments.items():
            groups.setdefault(customer, set()).add(str(key))
        return {key: frozenset(group) for group in groups.values() for key in group}


def test_an_expectation_holds_only_when_every_part_of_it_is_seen():
    expected = Expectation(holds=(("a@x.example", "crm.customers:1"),),
                           lacks=(("loyalty.members:2", "crm.customers:1"),),
                           shows=(("a@x.example", "7 Zubo Road"),),
                           points=("SKB1", 500))
    seen = {"a@x.example": {"sources": ["crm.customers:1"], "address": "7 Zubo Road",
                            "golden": {"loyalty": {"points": 500}}},
            "loyalty.members:2": {"sources": ["loyalty.members:2"]},
            "SKB1": {"golden": {"loyalty": {"points": 501}}}}
    assert expected.references() == ("a@x.example", "loyalty.members:2", "SKB1")
    assert expected.met(seen)
    assert not expected.met({**seen, "a@x.example": None})
    assert not expected.met({**seen, "loyalty.members:2": {"sources": ["crm.customers:1"]}})
    assert not expected.met({**seen, "SKB1": {"golden": {"loyalty": {"points": 499}}}})
    shown = {**seen["a@x.example"], "address": "8 Zubo Road"}
    assert not expected.met({**seen, "a@x.example": shown})


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000),
       kinds=st.lists(st.sampled_from(REALISTIC_KINDS), min_size=1, max_size=40))
def test_each_change_is_seen_in_the_oracle_and_the_product_links_exactly_the_oracle(seed, kinds):
    mix = RealisticCdc(people=120, twins=20, seed=seed)
    pipeline = Pipeline()
    pipeline.apply(list(mix.seed_rows()))
    assert pipeline.customers() == oracle_customers_by_key(mix)
    for step, kind in enumerate(kinds):
        change = mix.next_change(kind, now=step * 100.0)  # past the rest time: always eligible
        if change is None:
            continue
        expectation = change.expectation
        profiles = oracle_profiles(mix, expectation.references())
        for ref, text in expectation.shows:  # the oracle's profile text stands in for JSON
            assert profiles[ref] is not None and text in profiles[ref]["text"], (kind, ref)
        plain = Expectation(holds=expectation.holds, lacks=expectation.lacks,
                            points=expectation.points)
        assert plain.met(profiles), (kind, expectation, profiles)
        pipeline.apply(change.rows)
    assert pipeline.customers() == oracle_customers_by_key(mix)


def oracle_customers_by_key(mix: RealisticCdc) -> dict[str, frozenset[str]]:
    return oracle_customers(mix.current_rows())


def test_identifiers_are_never_shared_between_bench_people():
    mix = RealisticCdc(people=400, twins=40, seed=3)
    list(mix.seed_rows())
    for step in range(300):
        mix.next_change(REALISTIC_KINDS[step % len(REALISTIC_KINDS)], now=step * 100.0)
    owners: dict[str, set[int]] = {}
    for (table, pk), row in mix.current_rows().items():
        for column in IDENTIFYING:
            if row.get(column):
                owners.setdefault(str(row[column]).lower(), set()).add(mix.truth[record_key(table, pk)])
    assert all(len(people) == 1 for people in owners.values())
