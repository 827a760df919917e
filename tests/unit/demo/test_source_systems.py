from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timezone

from rag_assets.demo.people import ascii_fold
from rag_assets.demo.source_systems import (
    BOOKING,
    COLUMNS,
    CRM,
    LOYALTY,
    SUPPORT,
    TABLES,
    SourceChangeGenerator,
    build_source_systems,
    ground_truth,
    typo,
)

TODAY = date(2025, 1, 15)


def _fold(text):
    return ascii_fold(text or "").lower()


def test_deterministic(people, sources):
    again = build_source_systems(people, seed=7, today=TODAY)
    assert again.tables == sources.tables
    assert again.truth == sources.truth
    assert build_source_systems(people, seed=8, today=TODAY).tables != sources.tables


def test_every_table_has_rows_with_exactly_its_columns(sources):
    for key in TABLES:
        rows = sources.rows(*key)
        assert len(rows) >= 100, key
        columns = [name for name, _ in COLUMNS[key]]
        assert all(list(row) == columns for row in rows)
        assert len({row["id"] for row in rows}) == len(rows)


def test_ground_truth_covers_every_record_and_is_not_in_the_rows(people, sources):
    truth = ground_truth(sources)
    records = {(*key, pk) for key in TABLES for pk in sources.tables[key]}
    assert set(truth) == records
    person_ids = {p.person_id for p in people}
    assert set(truth.values()) <= person_ids
    for key in TABLES:
        for row in sources.tables[key].values():
            assert "person_id" not in row
            assert not any(isinstance(v, str) and re.fullmatch(r"P\d{5}", v) for v in row.values())


def test_overlap_between_systems(people, sources):
    spread = Counter(len(sources.systems_of(p.person_id)) for p in people)
    assert spread[3] + spread[4] >= 100  # at least a third appear in three or more systems
    assert spread[4] >= 30
    assert spread[1] >= 20  # and some are known to one system only
    assert sum(spread.values()) == len(people)
    bookings_per_person = Counter(sources.truth[(*BOOKING, pk)] for pk in sources.tables[BOOKING])
    assert max(bookings_per_person.values()) >= 4
    departures = [row["departure_date"] for row in sources.tables[BOOKING].values()]
    assert any(d < TODAY for d in departures) and any(d > TODAY for d in departures)


def test_names_are_misspelt_sometimes(people, sources):
    by_id = {p.person_id: p for p in people}
    misspelt = 0
    for pk, row in sources.tables[CRM].items():
        person = by_id[sources.truth[(*CRM, pk)]]
        if _fold(row["first_name"]) != _fold(person.first_name) or _fold(row["last_name"]) != _fold(person.last_name):
            misspelt += 1
    assert 10 <= misspelt <= len(sources.tables[CRM]) // 3
    booking_upper = sum(row["passenger_last_name"].isupper() for row in sources.tables[BOOKING].values())
    assert booking_upper >= 20
    slash_names = [row["full_name"] for row in sources.tables[LOYALTY].values() if "/" in row["full_name"]]
    assert slash_names


def test_contact_noise(people, sources):
    by_id = {p.person_id: p for p in people}
    kinds = Counter()
    for key, email_col, phone_col in ((CRM, "email", "phone"), (BOOKING, "customer_email", "phone"),
                                      (LOYALTY, "email", "phone"), (SUPPORT, "customer_email", "customer_phone")):
        for pk, row in sources.tables[key].items():
            person = by_id[sources.truth[(*key, pk)]]
            email, phone = row[email_col], row[phone_col]
            if email is None:
                kinds["missing_email"] += 1
            elif email != person.email and email.lower() == person.email:
                kinds["email_case"] += 1
            elif email.lower() != person.email:
                kinds["other_email"] += 1
            if phone is None:
                kinds["missing_phone"] += 1
            elif phone != person.phone and re.sub(r"\D", "", phone).endswith(person.phone[-6:]):
                kinds["phone_reformatted"] += 1
    for kind in ("missing_email", "email_case", "other_email", "missing_phone", "phone_reformatted"):
        assert kinds[kind] >= 5, kinds
    noise = Counter(n for notes in sources.noise.values() for n in notes)
    for kind in ("first_name_typo", "last_name_typo", "second_email", "phone_national_format",
                 "missing_date_of_birth", "duplicate_registration", "name_last_slash_first"):
        assert noise[kind] >= 1, kind


def test_duplicate_crm_registrations_exist(sources):
    per_person = Counter(sources.truth[(*CRM, pk)] for pk in sources.tables[CRM])
    assert any(n >= 2 for n in per_person.values())


def test_typo_changes_a_name_a_little():
    import random

    rng = random.Random(1)
    for name in ("Katherine", "Oliver", "Li", "Smith"):
        for _ in range(20):
            wrong = typo(rng, name)
            assert wrong != name and wrong[0] == name[0] and abs(len(wrong) - len(name)) <= 1


def test_change_generator_keeps_snapshot_and_truth_consistent(people):
    snapshot = build_source_systems(people, seed=7, today=TODAY)
    generator = SourceChangeGenerator(snapshot, people, seed=7, today=TODAY, id_offset=1000)
    now = datetime(2025, 1, 15, 12, tzinfo=timezone.utc)
    ops, kinds = Counter(), Counter()
    for _ in range(400):
        change = generator.next_change(now)
        ops[change.op] += 1
        kinds[change.kind] += 1
        key = (change.system, change.table)
        if change.op == "d":
            assert change.pk not in snapshot.tables[key] and change.before is not None
        else:
            assert snapshot.tables[key][change.pk] == change.after
            assert (*key, change.pk) in snapshot.truth
        if change.op == "u":
            assert change.before != change.after and change.before["id"] == change.after["id"]
    assert ops["u"] > ops["c"] > ops["d"] > 0
    assert {"crm_moved_house", "booking_new", "ticket_new", "loyalty_points"} <= set(kinds)
    new_bookings = [pk for pk in snapshot.tables[BOOKING] if pk >= 500001 + 1000]
    assert new_bookings  # created rows use the id offset

