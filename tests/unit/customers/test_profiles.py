"""Golden records: survivorship, provenance, activity and the content hash."""

from __future__ import annotations

from datetime import date

from rag_assets.customers.cdc_events import KafkaPosition
from rag_assets.customers.profiles import SurvivorshipPolicy, build_profile, profile_hash
from rag_assets.customers.source_state import RecordKey, RecordVersion, SourceRecord

TODAY = date(2025, 6, 1)
TABLES = {"crm": "customers", "booking": "bookings", "loyalty": "members", "support": "tickets"}


def record(system, pk, row, ts, offset=0, deleted=False):
    key = RecordKey(system, TABLES[system], str(pk))
    version = RecordVersion(ts, ts)
    return SourceRecord(
        key,
        None if deleted else {"id": pk, **row},
        version,
        version,
        KafkaPosition(f"cdc.{system}.{TABLES[system]}", 0, offset),
    )


CRM = record(
    "crm",
    1,
    {
        "first_name": "Sally",
        "last_name": "Thomas",
        "email": "sally@acme.com",
        "phone": "020 7946 0018",
        "date_of_birth": "1985-03-12",
        "address_line1": "12 Baker Street",
        "city": "London",
        "postcode": "nw16xe",
        "country": "GB",
    },
    ts=1000,
    offset=11,
)
LOYALTY = record(
    "loyalty",
    3,
    {
        "member_number": "LX-1",
        "full_name": "Sal Thomas-Smith",
        "email": "s.thomas@home.net",
        "phone": "+44 7700 900123",
        "tier": "gold",
        "points": 1200,
        "date_of_birth": "1985-03-21",
    },
    ts=3000,
    offset=4,
)
FUTURE = record(
    "booking",
    7,
    {
        "customer_email": "sally@acme.com",
        "passenger_first_name": "Sally",
        "passenger_last_name": "Thomas",
        "flight_no": "BA117",
        "origin": "LHR",
        "destination": "JFK",
        "departure_date": "2025-06-10",
        "status": "confirmed",
    },
    ts=2000,
)
PAST = record(
    "booking",
    8,
    {
        "customer_email": "sally@acme.com",
        "flight_no": "BA9",
        "departure_date": "2025-05-01",
        "status": "flown",
    },
    ts=1500,
)
CANCELLED = record(
    "booking",
    9,
    {
        "customer_email": "sally@acme.com",
        "flight_no": "BA5",
        "departure_date": "2025-07-01",
        "status": "Cancelled",
    },
    ts=1600,
)
OPEN = record(
    "support",
    20,
    {
        "customer_email": "sally@acme.com",
        "customer_name": "Sally Thomas",
        "subject": "Refund",
        "status": "open",
        "opened_at": "2025-05-30",
    },
    ts=4000,
)
CLOSED = record(
    "support",
    21,
    {"customer_email": "sally@acme.com", "subject": "Seat", "status": "resolved"},
    ts=3500,
)
ALL = [CRM, LOYALTY, FUTURE, PAST, CANCELLED, OPEN, CLOSED]


def test_names_dob_and_address_come_from_the_highest_priority_source():
    golden = build_profile("cus_1", ALL, TODAY)["golden"]
    assert (golden["given_name"]["value"], golden["surname"]["value"]) == ("Sally", "Thomas")
    assert golden["date_of_birth"]["value"] == "1985-03-12"  # crm beats the newer loyalty typo
    assert golden["address"]["value"] == {
        "line": "12 Baker Street",
        "city": "London",
        "postcode": "NW1 6XE",
        "country": "GB",
    }
    assert golden["surname"]["source"] == "crm.customers:1"


def test_contact_details_come_from_the_most_recent_record():
    golden = build_profile("cus_1", ALL, TODAY)["golden"]
    assert golden["email"]["value"] == "sally@acme.com"  # support ticket (ts 4000) is newest
    assert golden["email"]["source"] == "support.tickets:20"
    assert golden["phone"]["value"] == "+447700900123"  # loyalty (ts 3000) beats crm (ts 1000)


def test_priority_is_configurable():
    policy = SurvivorshipPolicy(source_priority=("loyalty", "crm", "booking", "support"))
    golden = build_profile("cus_1", ALL, TODAY, policy)["golden"]
    assert golden["date_of_birth"]["value"] == "1985-03-21"
    assert golden["surname"]["value"] == "Thomas-Smith"


def test_every_golden_field_has_provenance():
    golden = build_profile("cus_1", ALL, TODAY)["golden"]
    for name, field in golden.items():
        assert {"value", "source", "version_ts_ms", "cdc_position"} <= set(
            field
        ) or name == "loyalty"
    assert golden["given_name"]["cdc_position"] == "cdc.crm.customers/0/11"
    assert golden["given_name"]["version_ts_ms"] == 1000


def test_all_contact_details_are_listed_with_their_sources():
    profile = build_profile("cus_1", ALL, TODAY)
    assert [e["value"] for e in profile["emails"]] == ["s.thomas@home.net", "sally@acme.com"]
    acme = next(e for e in profile["emails"] if e["value"] == "sally@acme.com")
    assert "crm.customers:1" in acme["sources"] and "booking.bookings:7" in acme["sources"]
    assert [p["value"] for p in profile["phones"]] == ["+442079460018", "+447700900123"]
    assert len(profile["addresses"]) == 1


def test_loyalty_bookings_and_tickets():
    profile = build_profile("cus_1", ALL, TODAY)
    assert profile["golden"]["loyalty"]["tier"] == "gold"
    assert profile["golden"]["loyalty"]["points"] == 1200
    assert [b["flight_no"] for b in profile["upcoming_bookings"]] == ["BA117"]
    assert profile["upcoming_bookings"][0]["departure_date"] == "2025-06-10"
    assert [t["subject"] for t in profile["open_tickets"]] == ["Refund"]


def test_today_decides_what_is_upcoming():
    later = build_profile("cus_1", ALL, date(2025, 6, 11))
    same_day = build_profile("cus_1", ALL, date(2025, 6, 10))
    assert later["upcoming_bookings"] == []
    assert [b["flight_no"] for b in same_day["upcoming_bookings"]] == ["BA117"]


def test_last_interactions_are_newest_first_and_bounded():
    interactions = build_profile("cus_1", ALL, TODAY)["last_interactions"]
    assert [i["source"] for i in interactions] == [
        "support.tickets:20",
        "support.tickets:21",
        "loyalty.members:3",
        "booking.bookings:7",
        "booking.bookings:9",
    ]
    assert interactions[0]["kind"] == "support_ticket"
    assert interactions[3]["summary"] == "booking BA117 LHR-JFK (confirmed)"


def test_deleted_records_do_not_contribute():
    profile = build_profile("cus_1", [CRM, record("loyalty", 3, {}, ts=5000, deleted=True)], TODAY)
    assert "loyalty" not in profile["golden"]
    assert profile["sources"] == ["crm.customers:1"]


def test_content_hash_is_stable_and_tracks_content():
    a = build_profile("cus_1", ALL, TODAY)
    b = build_profile("cus_1", list(reversed(ALL)), TODAY)
    assert a == b
    assert a["content_hash"] == profile_hash(a)
    changed = record("crm", 1, {"first_name": "Sal", "last_name": "Thomas"}, ts=5000)
    assert build_profile("cus_1", [changed] + ALL[1:], TODAY)["content_hash"] != a["content_hash"]


def test_profile_is_plain_json():
    import json

    profile = build_profile("cus_1", ALL, TODAY)
    assert json.loads(json.dumps(profile)) == profile
