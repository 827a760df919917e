"""Concurrent identity linkers (cluster-level locking, `cluster_locks`): three linkers over
interleaved partitions end where one linker does; linkers on disjoint neighbourhoods are inside
their batches at the same time; a linker and an erasure still exclude each other.

RAG_LINKING_REPEATS=20 runs the first test 20 times with different seeds (to catch races);
tests/unit/customers/test_cluster_locks.py holds the lock-order rule."""

import os
import threading
import time
from collections import Counter

import pytest

from rag_assets.customers import cdc_apply, identity_linking
from rag_assets.customers.assets import ensure_customer_schema
from rag_assets.customers.catalogue_sync import sync_catalogue
from rag_assets.customers.cdc_events import parse_cdc_record
from rag_assets.customers import cluster_locks
from rag_assets.customers.cluster_locks import (
    MAX_CLUSTER_LOCKED_RECORDS,
    NeighbourhoodLocks,
    NeighbourhoodUnavailable,
)
from rag_assets.privacy.erasure import erase_in_postgres
from rag_assets.customers.identity_store import PostgresIdentityStore
from rag_assets.platform.pg_connection import in_transaction
from tests.integration.customers.helpers import (
    assert_matches_oracle,
    debezium,
    oracle_state,
    stored_state,
)
from tests.integration.customers.linking_workload import run_workers, workload

pytestmark = pytest.mark.integration

REPEATS = int(os.environ.get("RAG_LINKING_REPEATS", "1"))
WAIT = 20  # seconds: only reached when the behaviour under test is broken


@pytest.mark.parametrize("seed", range(11, 11 + REPEATS))
def test_three_concurrent_linkers_end_where_one_linker_does(postgres, seed):
    events = workload(seed=seed)
    crew = run_workers(postgres, events)

    expected = oracle_state(events)
    actual = stored_state(postgres)
    assert_matches_oracle(actual, expected, ids=False)  # clusters, and profiles by members
    assert "crm.customers:9001" in actual.assignments  # the bridge's records were linked
    for worker in crew:  # every linker linked, and merged or split clusters
        assert worker.stats.records_linked > 0
    events_by_kind = sum((w.stats.cluster_events for w in crew), Counter())
    assert events_by_kind["merged"] > 0 and events_by_kind["split"] > 0
    assert sum(w.stats.batches_exclusive for w in crew) < sum(w.stats.batches for w in crew)


def _records(postgres, rows: list[tuple]) -> None:
    """Store CRM customers (surname, pk, email[, phone]) and queue them for linking. The
    catalogue is recorded first: the first batch after a catalogue change writes it, and
    another linker's first batch waits for that."""
    with postgres.transaction() as cur:
        ensure_customer_schema(cur, postgres)
        sync_catalogue(cur)
        events = []
        for offset, (name, pk, email, *phone) in enumerate(rows):
            m = debezium("crm", "customers", "c", pk=pk, ts_ms=1_700_000_000_000 + offset,
                         after={"id": pk, "first_name": "Kim", "last_name": name, "email": email,
                                "phone": phone[0] if phone else None})
            events.append(parse_cdc_record(m.topic, 0, offset, m.key, m.value))
        cdc_apply.apply_events(cur, events, cdc_apply.ApplyStats())


def _link_one_batch(postgres, limit: int = 1) -> int:
    with postgres.transaction() as cur:
        return identity_linking.link_batch(cur, identity_linking.LinkStats(), limit=limit,
                                           store=PostgresIdentityStore())


def _in_threads(*targets) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(target):
        try:
            target()
        except BaseException as error:  # noqa: BLE001 — returned to the test
            errors.append(error)

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_linkers_on_disjoint_neighbourhoods_are_inside_their_batches_together(postgres,
                                                                              monkeypatch):
    _records(postgres, [("Abbott", 1, "ana@example.com"), ("Zorn", 2, "bo@example.com")])
    both_inside = threading.Barrier(2, timeout=WAIT)
    write = identity_linking._write

    def meet_then_write(*args):
        both_inside.wait()  # passes only when the other linker holds its locks too
        write(*args)

    monkeypatch.setattr(identity_linking, "_write", meet_then_write)
    errors = _in_threads(lambda: _link_one_batch(postgres), lambda: _link_one_batch(postgres))
    assert errors == []
    assert len(stored_state(postgres).clusters) == 2


def test_linkers_sharing_an_identifier_take_turns(postgres, monkeypatch):
    """Two records with one email, one per linker: the second waits for the first's neighbourhood
    lock, then links to it."""
    _records(postgres, [("Abbott", 1, "same@example.com"), ("Zorn", 2, "same@example.com")])
    assert _first_holds_until_second_waits(postgres, monkeypatch) == []
    assert stored_state(postgres).clusters == {frozenset({"crm.customers:1", "crm.customers:2"})}


def _first_holds_until_second_waits(postgres, monkeypatch) -> list[BaseException]:
    """Two linkers of one record each: the first to write pauses there (its locks held) until
    PostgreSQL shows a session waiting for an advisory lock, i.e. the other linker behind it."""
    first_inside, release = threading.Event(), threading.Event()
    write = identity_linking._write

    def hold_first_then_write(*args):
        if not first_inside.is_set():
            first_inside.set()
            assert release.wait(WAIT)
        write(*args)

    monkeypatch.setattr(identity_linking, "_write", hold_first_then_write)

    def second():
        assert first_inside.wait(WAIT)
        _link_one_batch(postgres)

    def observe_then_release():
        assert first_inside.wait(WAIT)
        _wait_for_lock_wait(postgres, "advisory")
        release.set()

    return _in_threads(lambda: _link_one_batch(postgres), second, observe_then_release)


def test_linkers_meeting_only_in_a_cluster_take_turns(postgres, monkeypatch):
    """Clusters a (1), b (2), c (3); record 4 joins a and b (email of 1, phone of 2), record 5
    joins b and c (email of 2, phone of 3). 4 and 5 share no value: only b's customer-id lock
    orders them, and without it both would merge b from the same read into different ids."""
    _records(postgres, [("Adams", 1, "one@example.com"),
                        ("Baker", 2, "two@example.com", "+44 20 7946 0002"),
                        ("Clark", 3, None, "+44 20 7946 0003")])
    assert _link_one_batch(postgres, limit=3) == 3
    _records(postgres, [("Dodd", 4, "one@example.com", "+44 20 7946 0002"),
                        ("Evans", 5, "two@example.com", "+44 20 7946 0003")])
    assert _first_holds_until_second_waits(postgres, monkeypatch) == []
    assert stored_state(postgres).clusters == {
        frozenset(f"crm.customers:{pk}" for pk in range(1, 6))}


def _wait_for_lock_wait(postgres, locktype: str) -> None:
    """Until a session of this database waits for a lock of `locktype` (an observation, not a
    timing: the loop ends when PostgreSQL shows the wait)."""
    deadline = time.monotonic() + WAIT
    with postgres.connection() as conn:
        conn.autocommit = True
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = %s"
                               " AND database = (SELECT oid FROM pg_database"
                               " WHERE datname = current_database())", (locktype,)).fetchone()
            if row[0]:
                return
            time.sleep(0.05)
    raise AssertionError(f"no session waited for a {locktype} lock within {WAIT}s")


def test_an_erasure_waits_for_a_linker_in_its_batch(postgres, monkeypatch):
    _records(postgres, [("Abbott", 1, "ana@example.com"), ("Zorn", 2, "bo@example.com")])
    inside, release = threading.Event(), threading.Event()
    write = identity_linking._write

    def hold_then_write(*args):
        inside.set()
        assert release.wait(WAIT)
        write(*args)

    monkeypatch.setattr(identity_linking, "_write", hold_then_write)
    erased = []

    def erase():
        assert inside.wait(WAIT)
        with postgres.transaction() as cur:
            erased.append(erase_in_postgres(cur, postgres.db_schema, "bo@example.com"))

    def observe_then_release():
        assert inside.wait(WAIT)
        _wait_for_lock_wait(postgres, "advisory")  # the erasure, behind the linker's lock
        assert not erased
        release.set()

    errors = _in_threads(lambda: _link_one_batch(postgres, limit=2), erase, observe_then_release)
    assert errors == []
    assert erased and erased[0].customer_found
    assert set(stored_state(postgres).assignments) == {"crm.customers:1"}


def test_a_linker_waits_for_an_erasure_in_flight(postgres):
    _records(postgres, [("Abbott", 1, "ana@example.com")])
    assert _link_one_batch(postgres) == 1
    _records(postgres, [("Zorn", 2, "bo@example.com")])
    with postgres.connection() as conn:
        with in_transaction(conn) as cur:
            erase_in_postgres(cur, postgres.db_schema, "ana@example.com")
            linked = []
            linker = threading.Thread(target=lambda: linked.append(_link_one_batch(postgres)))
            linker.start()
            _wait_for_lock_wait(postgres, "advisory")
            assert not linked
        linker.join(WAIT)
    assert linked == [1]
    assert set(stored_state(postgres).assignments) == {"crm.customers:2"}


def test_a_batch_too_large_for_neighbourhood_locks_runs_exclusive(postgres):
    rows = [("P", pk, f"p{pk}@example.com") for pk in range(MAX_CLUSTER_LOCKED_RECORDS + 1)]
    _records(postgres, rows)
    stats = identity_linking.LinkStats()
    with postgres.transaction() as cur:
        taken = identity_linking.link_batch(cur, stats, limit=len(rows))
    assert (taken, stats.batches, stats.batches_exclusive) == (len(rows), 1, 1)
    assert len(stored_state(postgres).clusters) == len(rows)


def test_a_worker_links_what_its_partitions_bring(postgres):
    """The harness itself: one worker over every partition gives the oracle's state."""
    events = workload(seed=5, people=10, changes=30)
    crew = run_workers(postgres, events, workers=1)
    assert crew[0].stats.records_linked > 0
    assert_matches_oracle(stored_state(postgres), oracle_state(events), ids=False)


def test_a_batch_setting_a_record_aside_escalates_when_a_lock_it_needs_is_busy(postgres,
                                                                               monkeypatch):
    """Linker A's batch holds record 1 and a record the database refuses (2). After its first
    attempt failed, linker B takes a lock A needs (3 shares 1's email) and holds it in its write.
    A's later parts may not wait for a lock (A wrote meanwhile), so A runs the batch again under
    the exclusive graph lock: it waits for B, then links 1 (with 3) and sets 2 aside."""
    _records(postgres, [("Abbott", 1, "ann@example.com"), ("Baker", 2, "bea@example.com"),
                        ("Clark", 3, "ann@example.com")])
    with postgres.transaction() as cur:
        cur.execute("ALTER TABLE identity_nodes ADD CONSTRAINT no_node_2"
                    " CHECK (record_key <> 'crm.customers:2')")
    a_failed, b_inside, release = threading.Event(), threading.Event(), threading.Event()
    changes, write = identity_linking._changes, identity_linking._write
    calls = threading.local()

    def changes_waiting_for_b_after_a_failure(cur, keys):
        calls.n = getattr(calls, "n", 0) + 1
        if calls.n == 2 and not b_inside.is_set():  # A's next part, after its first attempt
            a_failed.set()
            assert b_inside.wait(WAIT)
        return changes(cur, keys)

    def write_holding_b(cur, keys, *args):
        if [str(k) for k in keys] == ["crm.customers:3"]:
            b_inside.set()
            assert release.wait(WAIT)
        write(cur, keys, *args)

    monkeypatch.setattr(identity_linking, "_changes", changes_waiting_for_b_after_a_failure)
    monkeypatch.setattr(identity_linking, "_write", write_holding_b)
    a_stats = identity_linking.LinkStats()

    def linker_a():
        with postgres.transaction() as cur:
            identity_linking.link_batch(cur, a_stats, limit=2, store=PostgresIdentityStore())

    def linker_b():
        assert a_failed.wait(WAIT)
        _link_one_batch(postgres)

    def observe_then_release():
        assert b_inside.wait(WAIT)
        _wait_for_lock_wait(postgres, "advisory")  # A, for the graph lock B holds shared
        release.set()

    assert _in_threads(linker_a, linker_b, observe_then_release) == []
    assert (a_stats.batches_exclusive, a_stats.records_set_aside) == (1, 1)
    assert stored_state(postgres).clusters == {frozenset({"crm.customers:1", "crm.customers:3"})}


def test_a_full_lock_table_sends_the_batch_to_the_exclusive_lock(postgres, monkeypatch):
    """More locks than PostgreSQL's shared lock table holds (64 x 200 slots here): "out of
    shared memory" becomes NeighbourhoodUnavailable, and the transaction goes on after the
    savepoint."""
    monkeypatch.setattr(cluster_locks, "LOCK_BUDGET", 1 << 30)
    with postgres.transaction() as cur:
        locks = NeighbourhoodLocks(cur, postgres.db_schema)
        with pytest.raises(NeighbourhoodUnavailable, match="no lock table slots left"):
            locks.cover(set(range(1 << 62, (1 << 62) + 100_000)))
        cur.execute("ROLLBACK TO SAVEPOINT identity_neighbourhood")
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
