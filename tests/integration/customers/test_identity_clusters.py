"""Merges and splits of customers through the real assets: a record linking two customers
merges them (oldest id survives, `merged` in cluster_history); changing or deleting the only
link splits them back to their old ids; ids survive a full rebuild."""

import pytest

from rag_assets.customers.identity_graph import mint_customer_id
from rag_assets.customers.source_state import RecordKey
from tests.integration.customers.helpers import (
    assert_matches_oracle,
    catch_up,
    debezium,
    materialize_customers,
    metadata,
    oracle_state,
    publish,
    read_log,
    stored_state,
    tombstone,
)

pytestmark = pytest.mark.integration

ALICE = {"id": 1, "first_name": "Alice", "last_name": "Moreau", "email": "alice@example.org",
         "phone": None, "date_of_birth": 5520, "address_line1": "1 Quay St", "city": "Leeds",
         "postcode": "LS1 4AB", "country": "GB", "national_id": None}
DAN = {"id": 70001, "member_number": "SKL-555-111", "full_name": "Dan Ng",
       "email": "dan@example.net", "phone": "+447700900555", "tier": "Gold", "points": 20000,
       "date_of_birth": "01/01/1960"}
BRIDGE = {"id": 900001, "customer_email": "alice@example.org", "customer_phone": "+447700900555",
          "customer_name": "A. Moreau", "subject": "Shared booking", "status": "open",
          "opened_at": "2025-01-10T09:00:00Z", "updated_at": "2025-01-10T09:00:00Z"}

A, D, T = "crm.customers:1", "loyalty.members:70001", "support.tickets:900001"
ALICE_ID = mint_customer_id(RecordKey("crm", "customers", "1"))
DAN_ID = mint_customer_id(RecordKey("loyalty", "members", "70001"))


def history_rows(postgres):
    with postgres.transaction() as cur:
        cur.execute("SELECT kind, customer_id, other_id FROM cluster_history ORDER BY id")
        return cur.fetchall()


def step(kafka, postgres, *messages):
    publish(kafka, messages, partitions=1)
    (run,) = catch_up(kafka, postgres)
    return run


def test_a_linking_record_merges_and_removing_the_link_splits(kafka, postgres):
    step(kafka, postgres,
         debezium("crm", "customers", "r", pk=1, after=ALICE, ts_ms=1_000, tx_id=1, lsn=10),
         debezium("loyalty", "members", "r", pk=70001, after=DAN, ts_ms=2_000, tx_id=2, lsn=20))
    assert stored_state(postgres).assignments == {A: ALICE_ID, D: DAN_ID}

    # The ticket carries Alice's email and Dan's phone: one customer, the oldest id survives.
    run = step(kafka, postgres, debezium("support", "tickets", "c", pk=900001, after=BRIDGE,
                                         ts_ms=3_000, tx_id=3, lsn=30))
    assert stored_state(postgres).assignments == {A: ALICE_ID, D: ALICE_ID, T: ALICE_ID}
    assert ("merged", DAN_ID, ALICE_ID) in history_rows(postgres)
    assert metadata(run, "identity_graph")["clusters_merged"] == 1
    profile = stored_state(postgres).profiles[ALICE_ID]
    assert set(profile["sources"]) == {A, D, T}
    assert DAN_ID not in stored_state(postgres).profiles  # the merged-away profile is removed

    # The only link to Dan (the phone) is removed: Dan splits off and gets his old id back.
    unlinked = {**BRIDGE, "customer_phone": None, "updated_at": "2025-01-11T09:00:00Z"}
    run = step(kafka, postgres, debezium("support", "tickets", "u", pk=900001, before=BRIDGE,
                                         after=unlinked, ts_ms=4_000, tx_id=4, lsn=40))
    assert stored_state(postgres).assignments == {A: ALICE_ID, D: DAN_ID, T: ALICE_ID}
    assert history_rows(postgres)[-1] == ("split", DAN_ID, ALICE_ID)
    assert metadata(run, "identity_graph")["clusters_split"] == 1
    assert set(stored_state(postgres).profiles) == {ALICE_ID, DAN_ID}

    # Linked again, then the linking record is deleted: split again, the same two ids.
    step(kafka, postgres, debezium("support", "tickets", "u", pk=900001, before=unlinked,
                                   after=BRIDGE, ts_ms=5_000, tx_id=5, lsn=50))
    assert set(stored_state(postgres).assignments.values()) == {ALICE_ID}
    step(kafka, postgres,
         debezium("support", "tickets", "d", pk=900001, before=BRIDGE, ts_ms=6_000, tx_id=6, lsn=60),
         tombstone("support", "tickets", 900001))
    state = stored_state(postgres)
    assert state.assignments == {A: ALICE_ID, D: DAN_ID}
    assert [row[0] for row in history_rows(postgres)] == [
        "created", "created", "merged", "split", "merged", "split"]
    assert_matches_oracle(state, oracle_state(read_log(kafka)))

    # A full rebuild relinks everything from the topics: the same ids.
    materialize_customers(kafka, postgres)
    assert stored_state(postgres).assignments == state.assignments
    assert stored_state(postgres).profiles == state.profiles


def test_a_record_that_changes_identity_moves_between_customers(kafka, postgres):
    other = {**ALICE, "id": 2, "first_name": "Zoe", "last_name": "Park", "email": "zoe@example.org",
             "date_of_birth": 9000, "address_line1": "7 Hill Rd"}
    step(kafka, postgres,
         debezium("crm", "customers", "r", pk=1, after=ALICE, ts_ms=1_000, tx_id=1, lsn=10),
         debezium("crm", "customers", "r", pk=2, after=other, ts_ms=1_000, tx_id=1, lsn=10),
         debezium("support", "tickets", "c", pk=900001, after={**BRIDGE, "customer_phone": None},
                  ts_ms=2_000, tx_id=2, lsn=20))
    zoe_id = mint_customer_id(RecordKey("crm", "customers", "2"))
    assert stored_state(postgres).assignments[T] == ALICE_ID
    # The ticket's email is corrected to Zoe's: it leaves Alice and joins Zoe.
    moved = {**BRIDGE, "customer_phone": None, "customer_email": "zoe@example.org",
             "customer_name": "Zoe Park"}
    step(kafka, postgres, debezium("support", "tickets", "u", pk=900001, after=moved,
                                   ts_ms=3_000, tx_id=3, lsn=30))
    state = stored_state(postgres)
    assert state.assignments == {A: ALICE_ID, "crm.customers:2": zoe_id, T: zoe_id}
    assert T in state.profiles[zoe_id]["sources"] and T not in state.profiles[ALICE_ID]["sources"]
    assert_matches_oracle(state, oracle_state(read_log(kafka)))
