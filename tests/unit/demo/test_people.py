from __future__ import annotations

import re
from datetime import date

from rag_assets.demo.people import NAMES, generate_people, national_phone, spaced_international

E164 = re.compile(r"^\+[1-9]\d{7,14}$")


def test_same_seed_same_people_and_other_seed_differs(people):
    assert generate_people(300, seed=7, today=date(2025, 1, 15)) == people
    assert generate_people(300, seed=8, today=date(2025, 1, 15)) != people


def test_count_and_unique_ids_and_contacts(people):
    assert len(people) == 300
    assert len({p.person_id for p in people}) == 300
    assert len({p.email for p in people}) == 300
    assert len({p.phone for p in people}) == 300
    assert len({p.loyalty_number for p in people}) == 300


def test_contact_details_are_fictional_and_e164(people):
    for p in people:
        assert E164.match(p.phone), p.phone
        assert p.email.split("@")[1].split(".")[-2] == "example"
        if p.country == "GB":
            assert p.phone.startswith("+447700900")  # Ofcom drama range
            assert p.national_id.startswith("QQ")
        if p.country == "US":
            assert p.phone[5:10] == "55501"  # 555-01XX, reserved for fiction
            assert p.national_id.startswith("9")


def test_population_is_diverse_and_adult(people):
    countries = {p.country for p in people}
    assert {"GB", "US"} <= countries and len(countries) >= 6
    surname_pool = {name for _, surnames in NAMES.values() for name in surnames}
    traditions = {t for p in people for t, (_, surnames) in NAMES.items()
                  if p.last_name.split("-")[0] in surnames}
    assert len(traditions) >= 7
    assert len({p.last_name for p in people}) > 60
    assert all(p.last_name.split("-")[0] in surname_pool for p in people)
    assert any(not p.first_name.isascii() or not p.last_name.isascii() for p in people)
    for p in people:
        age = (date(2025, 1, 15) - p.date_of_birth).days / 365.25
        assert 17.9 < age < 86
    assert len({p.tier for p in people}) == 4


def test_phone_formats():
    assert national_phone("+447700900123", "GB") == "07700 900123"
    assert national_phone("+12125550123", "US") == "(212) 555-0123"
    assert spaced_international("+447700900123", "GB") == "+44 7700 900123"
    assert spaced_international("+12125550123", "US") == "+1 212 555 0123"
