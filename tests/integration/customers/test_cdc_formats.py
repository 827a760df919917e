"""Every CDC format and op through real Kafka and PostgreSQL: Debezium with and without the
schema wrapper (ops c/u/d/r/t, tombstones, REPLICA IDENTITY DEFAULT deletes) and AWS DMS
(load/insert/update/delete/truncate); the final state equals the in-memory oracle's."""

import pytest

from tests.integration.customers.helpers import (
    assert_matches_oracle,
    catch_up,
    debezium,
    dms,
    metadata,
    oracle_state,
    publish,
    read_log,
    stored_state,
    tombstone,
)

pytestmark = pytest.mark.integration

ALICE = {"id": 1, "first_name": "Alice", "last_name": "Moreau", "email": "alice@example.org",
         "phone": "+447700900001", "date_of_birth": 5520, "address_line1": "1 Quay St",
         "city": "Leeds", "postcode": "LS1 4AB", "country": "GB", "national_id": "QQ123456A"}
BOB = {**ALICE, "id": 2, "first_name": "Bob", "last_name": "Stone", "email": "bob@example.org",
       "phone": "+447700900002", "date_of_birth": 560, "national_id": "QQ654321B",
       "address_line1": "9 Mill Rd"}
CARLA = {**ALICE, "id": 3, "first_name": "Carla", "last_name": "Ruiz", "email": "carla@example.org",
         "phone": None, "date_of_birth": 7640, "national_id": "QQ111111C", "address_line1": "4 Park Ave"}
MEMBER = {"id": 70001, "member_number": "SKL-100-200", "full_name": "Alice Moreau",
          "email": "ALICE@example.org", "phone": "07700 900001", "tier": "Silver", "points": 5000,
          "date_of_birth": "11/02/1985"}
MEMBER_2 = {**MEMBER, "id": 70002, "member_number": "SKL-999-000", "full_name": "Dan Ng",
            "email": "dan@example.net", "phone": None, "date_of_birth": "01/01/1960"}
TICKET = {"id": 900001, "customer_email": "carla@example.org", "customer_phone": None,
          "customer_name": "Carla Ruiz", "subject": "Lost bag", "status": "open",
          "opened_at": "2025-01-10T09:00:00Z", "updated_at": "2025-01-10T09:00:00Z"}
TICKET_2 = {**TICKET, "id": 900002, "subject": "Refund", "customer_email": "bob@example.org"}
BOOKING = {"id": 500001, "customer_email": "alice@example.org", "passenger_first_name": "ALICE",
           "passenger_last_name": "MOREAU", "phone": None, "flight_no": "SK101", "origin": "LHR",
           "destination": "JFK", "departure_date": 20300, "status": "confirmed",
           "created_at": "2025-01-02T10:00:00Z"}


def key_only(row):
    return {name: (value if name == "id" else None) for name, value in row.items()}


def history():
    crm, loyalty, booking = ("crm", "customers"), ("loyalty", "members"), ("booking", "bookings")
    moved = {**ALICE, "city": "York", "postcode": "YO1 7HH"}
    return [
        # Debezium, plain JSON, snapshot reads then streaming changes (pk % 2 = partition).
        debezium(*crm, "r", pk=1, after=ALICE, ts_ms=1_000, tx_id=10, lsn=100, partition=1),
        debezium(*crm, "r", pk=2, after=BOB, ts_ms=1_000, tx_id=10, lsn=100, partition=0),
        debezium(*crm, "c", pk=3, after=CARLA, ts_ms=2_000, tx_id=11, lsn=200, partition=1),
        debezium(*crm, "u", pk=1, before=ALICE, after=moved, ts_ms=3_000, tx_id=12, lsn=300,
                 partition=1),
        debezium(*crm, "d", pk=2, before=BOB, ts_ms=4_000, tx_id=13, lsn=400, partition=0),
        tombstone(*crm, 2, partition=0),
        # REPLICA IDENTITY DEFAULT: no before image on an update.
        debezium(*crm, "u", pk=3, after={**CARLA, "phone": "+447700900003"}, ts_ms=5_000,
                 tx_id=14, lsn=500, partition=1),
        # Debezium with the {"schema","payload"} wrapper on key and value.
        debezium(*loyalty, "r", pk=70001, after=MEMBER, ts_ms=1_000, tx_id=20, lsn=100,
                 wrapped=True, partition=1),
        debezium(*loyalty, "c", pk=70002, after=MEMBER_2, ts_ms=2_000, tx_id=21, lsn=200,
                 wrapped=True, partition=0),
        debezium(*loyalty, "u", pk=70001, before=MEMBER, after={**MEMBER, "points": 6100},
                 ts_ms=3_000, tx_id=22, lsn=300, wrapped=True, partition=1),
        # A delete whose before image holds only the key.
        debezium(*loyalty, "d", pk=70002, before=key_only(MEMBER_2), ts_ms=4_000, tx_id=23,
                 lsn=400, wrapped=True, partition=0),
        tombstone(*loyalty, 70002, partition=0),
        # Truncate on one partition deletes older rows of the table written on the other one;
        # a newer insert survives it.
        debezium(*booking, "c", pk=500001, after=BOOKING, ts_ms=6_000, tx_id=30, lsn=600,
                 partition=1),
        debezium(*booking, "c", pk=500002, after={**BOOKING, "id": 500002, "flight_no": "SK202"},
                 ts_ms=6_100, tx_id=31, lsn=610, partition=0),
        debezium(*booking, "t", ts_ms=7_000, tx_id=32, lsn=700, partition=0),
        debezium(*booking, "c", pk=500003, after={**BOOKING, "id": 500003, "flight_no": "SK303"},
                 ts_ms=8_000, tx_id=33, lsn=800, partition=1),
        # AWS DMS: full load, CDC insert/update/delete; key is "schema.table", pk from the row.
        dms("support", "tickets", "load", TICKET, ts="2025-01-10T09:00:00.000000Z", partition=0),
        dms("support", "tickets", "insert", TICKET_2, ts="2025-01-10T09:05:00Z", tx_id=40,
            partition=0),
        dms("support", "tickets", "update", {**TICKET, "status": "pending"},
            ts="2025-01-10T10:00:00Z", tx_id=41, partition=0),
        dms("support", "tickets", "delete", TICKET_2, ts="2025-01-10T11:00:00Z", tx_id=42,
            partition=0),
        # A DMS truncate (a control record), then a newer row on the other partition.
        dms("support", "tickets", "truncate", None, ts="2025-01-10T11:15:00Z", tx_id=44,
            partition=0, record_type="control"),
        dms("support", "tickets", "insert", {**TICKET, "id": 900003}, ts="2025-01-10T11:30:00Z",
            tx_id=43, partition=1),
    ]


def test_every_op_and_format_reaches_the_oracle_state(kafka, postgres):
    publish(kafka, history(), partitions=2)
    (run,) = catch_up(kafka, postgres)

    meta = metadata(run)
    assert meta["events_read"] == 22
    assert meta["dead_letters"] == 0
    assert meta["events_by_table"] == {"crm.customers": 7, "loyalty.members": 5,
                                       "booking.bookings": 4, "support.tickets": 6}
    state = stored_state(postgres)
    assert set(state.live_rows) == {
        "crm.customers:1", "crm.customers:3", "loyalty.members:70001",
        "booking.bookings:500003", "support.tickets:900003"}
    assert state.live_rows["crm.customers:1"]["city"] == "York"
    assert state.live_rows["crm.customers:3"]["phone"] == "+447700900003"
    assert state.live_rows["loyalty.members:70001"]["points"] == 6100

    # Alice's CRM record, loyalty membership and booking are one customer; Carla's CRM
    # record and ticket another.
    assert frozenset({"crm.customers:1", "loyalty.members:70001", "booking.bookings:500003"}) \
        in state.clusters
    assert frozenset({"crm.customers:3", "support.tickets:900003"}) \
        in state.clusters
    assert_matches_oracle(state, oracle_state(read_log(kafka)))


def test_truncate_watermark_holds_against_late_events_of_other_partitions(kafka, postgres):
    booking = ("booking", "bookings")
    first = [
        debezium(*booking, "c", pk=500001, after=BOOKING, ts_ms=6_000, tx_id=30, lsn=600,
                 partition=1),
        debezium(*booking, "t", ts_ms=7_000, tx_id=32, lsn=700, partition=0),
    ]
    publish(kafka, first, partitions=2)
    catch_up(kafka, postgres)
    assert not stored_state(postgres).live_rows
    # Arrives after the truncate was applied, but is older than it: skipped. A newer one lands.
    publish(kafka, [
        debezium(*booking, "u", pk=500001, after={**BOOKING, "status": "changed"}, ts_ms=6_500,
                 tx_id=31, lsn=650, partition=1),
        debezium(*booking, "c", pk=500004, after={**BOOKING, "id": 500004}, ts_ms=9_000,
                 tx_id=34, lsn=900, partition=1),
    ])
    (run,) = catch_up(kafka, postgres)
    assert metadata(run)["stale_skipped"] == 1
    assert set(stored_state(postgres).live_rows) == {"booking.bookings:500004"}
    assert_matches_oracle(stored_state(postgres), oracle_state(read_log(kafka)))
