"""Applying change events to source-record state: ordering, duplicates, deletes, truncates."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag_assets.customers.cdc_events import ChangeEvent, KafkaPosition
from rag_assets.customers.source_state import (
    Outcome,
    RecordKey,
    RecordVersion,
    SourceState,
    apply_change_events,
)

K1 = RecordKey("crm", "customers", "1")


def outcomes(changes):
    return [outcome for _, outcome in changes.outcomes]


def test_create_then_update_keeps_the_latest_row(make_change):
    state = SourceState()
    state.apply(
        [
            make_change("1", "c", ts=100, row={"id": 1, "email": "a@x"}),
            make_change("1", "u", ts=200, row={"id": 1, "email": "b@x"}),
        ]
    )
    assert state.live_rows() == {K1: {"id": 1, "email": "b@x"}}
    assert state.records[K1].version == RecordVersion(200, 2000)
    assert state.records[K1].first_version == RecordVersion(100, 1000)


def test_redelivered_event_is_a_duplicate(make_change):
    state = SourceState()
    event = make_change("1", "c", ts=100)
    assert outcomes(state.apply([event])) == [Outcome.APPLIED]
    assert outcomes(state.apply([event])) == [Outcome.DUPLICATE]


def test_older_update_never_overwrites_a_newer_one(make_change):
    state = SourceState()
    state.apply([make_change("1", "u", ts=300, row={"id": 1, "v": "new"})])
    changes = state.apply([make_change("1", "u", ts=200, row={"id": 1, "v": "old"})])
    assert outcomes(changes) == [Outcome.STALE]
    assert state.live_rows()[K1] == {"id": 1, "v": "new"}


def test_lsn_is_not_trusted_across_commit_times(make_change):
    # Later commit with a smaller LSN (LSNs are not monotonic in emit order) still wins.
    state = SourceState()
    state.apply(
        [
            make_change("1", "u", ts=100, lsn=900, row={"id": 1, "v": "first"}),
            make_change("1", "u", ts=101, lsn=500, row={"id": 1, "v": "second"}),
        ]
    )
    assert state.live_rows()[K1]["v"] == "second"


def test_lsn_breaks_ties_within_the_same_millisecond(make_change):
    state = SourceState()
    later = make_change("1", "u", ts=100, lsn=20, row={"id": 1, "v": "later"})
    earlier = make_change("1", "u", ts=100, lsn=10, row={"id": 1, "v": "earlier"})
    changes = state.apply([later, earlier])
    assert outcomes(changes) == [Outcome.APPLIED, Outcome.STALE]
    assert state.live_rows()[K1]["v"] == "later"


def test_same_version_without_lsn_applies_in_kafka_order_and_dedupes(make_change):
    # DMS gives no LSN: two changes in the same millisecond are told apart by content.
    a = ChangeEvent(
        "crm",
        "customers",
        "1",
        "u",
        {"id": 1, "v": "a"},
        100,
        7,
        None,
        KafkaPosition("cdc.crm.customers", 0, 1),
    )
    b = ChangeEvent(
        "crm",
        "customers",
        "1",
        "u",
        {"id": 1, "v": "b"},
        100,
        7,
        None,
        KafkaPosition("cdc.crm.customers", 0, 2),
    )
    state = SourceState()
    assert outcomes(state.apply([a, b, a])) == [Outcome.APPLIED, Outcome.APPLIED, Outcome.DUPLICATE]
    assert state.live_rows()[K1]["v"] == "b"


def test_delete_leaves_a_tombstone_that_blocks_a_late_older_update(make_change):
    state = SourceState()
    state.apply([make_change("1", "c", ts=100), make_change("1", "d", ts=300)])
    changes = state.apply([make_change("1", "u", ts=200)])
    assert outcomes(changes) == [Outcome.STALE]
    assert state.live_rows() == {}
    assert state.records[K1].deleted and state.records[K1].version.ts_ms == 300


def test_recreate_after_delete_starts_a_new_incarnation(make_change):
    state = SourceState()
    state.apply(
        [
            make_change("1", "c", ts=100),
            make_change("1", "d", ts=200),
            make_change("1", "c", ts=300),
        ]
    )
    assert K1 in state.live_rows()
    assert state.records[K1].first_version.ts_ms == 300


def test_delete_of_an_unknown_key_is_remembered(make_change):
    state = SourceState()
    state.apply([make_change("9", "d", ts=500)])
    changes = state.apply([make_change("9", "c", ts=400)])
    assert outcomes(changes) == [Outcome.STALE]


def test_kafka_tombstone_only_confirms(make_change):
    state = SourceState()
    state.apply([make_change("1", "c", ts=100), make_change("1", "d", ts=200)])
    tombstone = ChangeEvent(
        "crm",
        "customers",
        "1",
        "tombstone",
        None,
        None,
        None,
        None,
        KafkaPosition("cdc.crm.customers", 0, 9),
    )
    changes = state.apply([tombstone])
    assert outcomes(changes) == [Outcome.CONFIRMATION]
    assert changes.records == {}


def test_truncate_deletes_older_records_of_that_table_only(make_change):
    state = SourceState()
    state.apply(
        [
            make_change("1", "c", ts=100),
            make_change("2", "c", ts=300),
            make_change("1", "c", ts=100, table="bookings", system="booking"),
        ]
    )
    changes = state.apply([make_change("", "t", ts=200)])
    assert set(changes.records) == {K1}
    assert set(state.live_rows()) == {
        RecordKey("crm", "customers", "2"),
        RecordKey("booking", "bookings", "1"),
    }
    assert changes.watermarks == {("crm", "customers"): RecordVersion(200, 2000)}


def test_event_older_than_a_truncate_arriving_late_is_skipped(make_change):
    state = SourceState()
    state.apply([make_change("", "t", ts=200)])
    changes = state.apply([make_change("5", "c", ts=150)])
    assert outcomes(changes) == [Outcome.TRUNCATED]
    assert state.live_rows() == {}


def test_version_column_decides_before_commit_time(make_change):
    state = SourceState(version_columns={("crm", "customers"): "version"})
    state.apply([make_change("1", "u", ts=500, row={"id": 1, "version": 3, "v": "v3"})])
    changes = state.apply([make_change("1", "u", ts=600, row={"id": 1, "version": 2, "v": "v2"})])
    assert outcomes(changes) == [Outcome.STALE]
    assert state.live_rows()[K1]["v"] == "v3"


def test_pure_function_reports_only_changed_records(make_change):
    stored = SourceState()
    stored.apply([make_change("1", "c", ts=100), make_change("2", "c", ts=100)])
    changes = apply_change_events(stored.records, {}, [make_change("2", "u", ts=200)])
    assert list(changes.records) == [RecordKey("crm", "customers", "2")]
    assert changes.counts()["applied"] == 1


# --- property-style checks: the final state does not depend on delivery ---------------------

KEYS = [str(n) for n in range(6)]
PARTITIONS = 3


def source_history(rng: random.Random, length: int) -> list[ChangeEvent]:
    """A realistic change history in commit order: inserts, updates, deletes and truncates."""
    live: set[str] = set()
    ts, lsn, events = 1000, 0, []
    for _ in range(length):
        ts += rng.choice([0, 0, 1, 5])  # same-millisecond commits happen
        lsn += 1
        if rng.random() < 0.04:
            events.append(
                ChangeEvent(
                    "crm",
                    "customers",
                    "",
                    "t",
                    None,
                    ts,
                    lsn,
                    lsn,
                    KafkaPosition("cdc.crm.customers", 0, 0),
                )
            )
            live.clear()
            continue
        pk = rng.choice(KEYS)
        if pk not in live:
            op = "c"
            live.add(pk)
        elif rng.random() < 0.2:
            op = "d"
            live.discard(pk)
        else:
            op = "u"
        row = {"id": pk} if op == "d" else {"id": pk, "n": lsn}
        partition = int(pk) % PARTITIONS
        events.append(
            ChangeEvent(
                "crm",
                "customers",
                pk,
                op,
                row,
                ts,
                lsn,
                lsn,
                KafkaPosition("cdc.crm.customers", partition, 0),
            )
        )
    return events


def by_partition(events):
    partitions: dict[int, list[ChangeEvent]] = {}
    for event in events:
        partitions.setdefault(event.position.partition, []).append(event)
    return partitions


def delivered(rng: random.Random, events, redeliver: bool):
    """Interleave partitions at random (order kept within each), optionally replaying ranges."""
    queues = {p: list(evs) for p, evs in by_partition(events).items()}
    if redeliver:
        for queue in queues.values():
            for _ in range(rng.randint(1, 3)):  # at-least-once: rewind and replay a range
                cut = rng.randint(0, len(queue))
                start = rng.randint(0, cut)
                queue[cut:cut] = queue[start:cut]
    stream, cursors = [], {p: 0 for p in queues}
    while any(cursors[p] < len(q) for p, q in queues.items()):
        p = rng.choice([p for p, q in queues.items() if cursors[p] < len(q)])
        stream.append(queues[p][cursors[p]])
        cursors[p] += 1
    return stream


def in_batches(rng: random.Random, stream):
    state, i = SourceState(), 0
    while i < len(stream):
        size = rng.choice([1, 2, 5, 17, len(stream)])
        state.apply(stream[i : i + size])
        i += size
    return state


def final_state(state: SourceState):
    return {
        k: (r.row, r.version, r.first_version) for k, r in state.records.items() if not r.deleted
    }


def truth(events):
    """What the source database holds after the history, computed the obvious way."""
    rows = {}
    for event in events:
        if event.op == "t":
            rows.clear()
        elif event.op == "d":
            rows.pop(RecordKey("crm", "customers", event.pk), None)
        else:
            rows[RecordKey("crm", "customers", event.pk)] = event.row
    return rows


@pytest.mark.parametrize("seed", range(40))
def test_final_state_is_independent_of_interleaving_batching_and_redelivery(seed):
    rng = random.Random(seed)
    history = source_history(rng, 120)
    reference = SourceState()
    reference.apply(history)
    assert reference.live_rows() == truth(history)
    for redeliver in (False, True):
        stream = delivered(rng, history, redeliver)
        assert final_state(in_batches(rng, stream)) == final_state(reference), (seed, redeliver)
        one_by_one = SourceState()
        for event in stream:
            one_by_one.apply([event])
        assert final_state(one_by_one) == final_state(reference)


@pytest.mark.parametrize("seed", range(10))
def test_every_redelivered_copy_is_skipped(seed):
    rng = random.Random(seed)
    history = [e for e in source_history(rng, 80) if e.op != "t"]
    stream = delivered(rng, history, redeliver=True)
    changes = SourceState().apply(stream)
    assert len(changes.applied) == len(history)


def test_transitions_list_every_intermediate_state_in_order(make_change):
    changes = SourceState().apply(
        [
            make_change("1", "c", ts=100),
            make_change("1", "u", ts=200),
            make_change("1", "u", ts=150),
            make_change("1", "d", ts=300),
        ]
    )
    assert [(t.version.ts_ms, t.deleted) for t in changes.transitions] == [
        (100, False),
        (200, False),
        (300, True),
    ]


_NAME = st.text(st.characters(blacklist_characters=".:", blacklist_categories=("Cs",)), min_size=1)


@given(_NAME, _NAME, st.text(st.characters(blacklist_categories=("Cs",))))
def test_a_record_key_parses_back_from_its_text(system, table, pk):
    key = RecordKey(system, table, pk)
    assert RecordKey.parse(str(key)) == key


@pytest.mark.parametrize("text", ["crm:1", "crm.customers", ".customers:1", "crm.:1", ""])
def test_text_that_is_no_record_key_is_refused_by_name(text):
    with pytest.raises(ValueError, match=r"not a record key \(system\.table:pk\)"):
        RecordKey.parse(text)
