"""Identifier normalisation and the per-table column mapping."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from rag_assets.catalogue import active_catalogue
from rag_assets.customers.identifiers import (
    IdentityColumns,
    PersonIdentity,
    canonical_given_name,
    extract_identity,
    fold_name,
    normalize_address_line,
    normalize_country,
    normalize_date_of_birth,
    normalize_document_number,
    normalize_email,
    normalize_phone,
    normalize_postcode,
    split_full_name,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("  Sally.Thomas@ACME.com ", "sally.thomas@acme.com"),
        ("mailto:Sally@Acme.com", "sally@acme.com"),
        ("first.last+tag@gmail.com", "first.last+tag@gmail.com"),  # no provider tricks
        ("not-an-email", None),
        ("a@b", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_normalize_email(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw, region, expected",
    [
        ("020 7946 0018", "GB", "+442079460018"),
        ("+44 (0)20 7946 0018", "US", "+442079460018"),
        ("0044 20 7946 0018", "US", "+442079460018"),
        ("07700 900123", "GB", "+447700900123"),
        ("(415) 555-0132", "US", "+14155550132"),
        ("415.555.0132", "US", "+14155550132"),
        ("12", "GB", None),
        ("call me", "GB", None),
        (None, "GB", None),
    ],
)
def test_normalize_phone_to_e164(raw, region, expected):
    assert normalize_phone(raw, region) == expected


def test_document_numbers_keep_only_letters_and_digits():
    assert normalize_document_number(" lx-0001 23 ") == "LX000123"
    assert normalize_document_number("AB 12 34 56 C") == "AB123456C"
    assert normalize_document_number(1804974) == "1804974"
    assert normalize_document_number(" - ") is None


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("  O'Brien-Smith ", "obrien smith"),
        ("ZOË", "zoe"),
        ("Søren Kierkegaard", "soren kierkegaard"),
        ("Mr. John  SMITH", "john smith"),
        ("Groß", "gross"),
        ("  ", None),
        (None, None),
    ],
)
def test_fold_name(raw, expected):
    assert fold_name(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Sally Thomas", ("sally", "thomas")),
        ("Thomas, Sally Ann", ("sally", "thomas")),
        ("Dr Sally Ann Thomas", ("sally", "thomas")),
        ("Cher", (None, "cher")),
        ("", (None, None)),
    ],
)
def test_split_full_name(raw, expected):
    assert split_full_name(raw) == expected


def test_nicknames_map_to_formal_names():
    assert canonical_given_name("bill") == "william"
    assert canonical_given_name("sally") == "sally"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("1985-03-12", "1985-03-12"),
        ("1985-03-12T00:00:00Z", "1985-03-12"),
        ("19850312", "1985-03-12"),
        (19850312, "1985-03-12"),
        ("12/03/1985", "1985-03-12"),
        ("12.03.1985", "1985-03-12"),
        ("12 Mar 1985", "1985-03-12"),
        ("March 12, 1985", "1985-03-12"),
        (5549, "1985-03-12"),  # Debezium days since epoch
        (date(1985, 3, 12), "1985-03-12"),
        (datetime(1985, 3, 12, 8, 30), "1985-03-12"),
        ("31/02/1985", None),
        ("1850-01-01", None),
        ("2999-01-01", None),
        ("yesterday", None),
        (None, None),
    ],
)
def test_normalize_date_of_birth(raw, expected):
    assert normalize_date_of_birth(raw) == expected


def test_month_first_dates_when_configured():
    assert normalize_date_of_birth("03/12/1985", day_first=False) == "1985-03-12"


@pytest.mark.parametrize(
    "raw, country, expected",
    [
        ("sw1a1aa", "GB", "SW1A 1AA"),
        (" SW1A  1AA ", None, "SW1A 1AA"),
        ("m1 1ae", "GB", "M1 1AE"),
        ("90210", "US", "90210"),
        ("1011 ab", "NL", "1011AB"),
        (2119, None, "2119"),
        ("", None, None),
    ],
)
def test_normalize_postcode(raw, country, expected):
    assert normalize_postcode(raw, country) == expected


def test_address_lines_agree_across_spellings():
    assert normalize_address_line("12 Baker Street") == normalize_address_line("12 baker st.")
    assert normalize_address_line("7 Wallaby Place") == "7 wallaby pl"


def test_country_names_and_codes():
    assert normalize_country("United Kingdom") == normalize_country("uk") == "GB"
    assert normalize_country("us") == "US"
    assert normalize_country("Atlantis") is None


def test_crm_row_identity():
    row = {
        "id": 1,
        "first_name": "Sally",
        "last_name": "Thomas",
        "email": " Sally@Acme.com",
        "phone": "020 7946 0018",
        "date_of_birth": "1985-03-12",
        "address_line1": "12 Baker Street",
        "city": "London",
        "postcode": "nw16xe",
        "country": "GB",
        "national_id": "ab 12 34 56 c",
    }
    identity = extract_identity("crm", "customers", row)
    assert identity == PersonIdentity(
        identifiers=frozenset(
            {("email", "sally@acme.com"), ("phone", "+442079460018"), ("national_id", "AB123456C")}
        ),
        given_name="sally",
        surname="thomas",
        date_of_birth="1985-03-12",
        address_line="12 baker st",
        city="london",
        postcode="NW1 6XE",
        country="GB",
    )


def test_phone_is_read_in_the_rows_country():
    row = {"id": 1, "phone": "(415) 555-0132", "country": "United States"}
    assert extract_identity("crm", "customers", row).values_of("phone") == ["+14155550132"]
    assert extract_identity(
        "crm", "customers", {"phone": "(415) 555-0132"}, default_region="US"
    ).values_of("phone") == ["+14155550132"]


def test_every_demo_table_is_mapped():
    loyalty = extract_identity(
        "loyalty",
        "members",
        {
            "id": 3,
            "member_number": "lx-000123",
            "full_name": "Sally Thomas",
            "email": "sally@acme.com",
            "phone": "+44 20 7946 0018",
            "tier": "gold",
            "date_of_birth": "12/03/1985",
        },
    )
    assert loyalty.values_of("loyalty_number") == ["LX000123"]
    assert (loyalty.given_name, loyalty.surname, loyalty.date_of_birth) == (
        "sally",
        "thomas",
        "1985-03-12",
    )
    booking = extract_identity(
        "booking",
        "bookings",
        {
            "customer_email": "SALLY@acme.com",
            "passenger_first_name": "Sally",
            "passenger_last_name": "Thomas",
            "phone": None,
        },
    )
    assert booking.values_of("email") == ["sally@acme.com"] and booking.surname == "thomas"
    ticket = extract_identity(
        "support",
        "tickets",
        {
            "customer_email": "x@y.org",
            "customer_phone": "07700 900123",
            "customer_name": "Thomas, Sally",
        },
    )
    assert ticket.values_of("phone") == ["+447700900123"] and ticket.given_name == "sally"
    assert set(active_catalogue().identity_columns) >= {
        ("crm", "customers"),
        ("booking", "bookings"),
        ("loyalty", "members"),
        ("support", "tickets"),
    }


def test_mapping_is_extensible_and_unknown_tables_are_empty():
    columns = {**active_catalogue().identity_columns, ("shop", "orders"): IdentityColumns(email=("buyer_email",))}
    assert extract_identity("shop", "orders", {"buyer_email": "A@B.co"}, columns=columns).values_of(
        "email"
    ) == ["a@b.co"]
    assert extract_identity("shop", "orders", {"buyer_email": "A@B.co"}) == PersonIdentity()
