"""What the product knows of one customer, for masking: from the identity of each record of the
cluster and from the stored profile (a profile as `build_profile` writes it)."""

from datetime import date

from rag_assets.customers.identifiers import extract_identity
from rag_assets.customers.known_identifiers import KnownIdentifiers, known_identifiers
from rag_assets.customers.profiles import build_profile
from rag_assets.customers.source_state import (
    KafkaPosition,
    RecordKey,
    RecordVersion,
    SourceRecord,
)

CRM = {"id": 1, "first_name": "Zoë", "last_name": "O'Brien", "email": " Zoe@Example.org",
       "phone": "07700 900101", "date_of_birth": "11/02/1985", "address_line1": "1 Quay Street",
       "city": "Leeds", "postcode": "ls14ab", "country": "UK", "national_id": "qq 12 34 56 a"}
LOYALTY = {"id": 70001, "member_number": "ly-70001", "email": "zoe@example.org",
           "full_name": "Zoe OBrien", "date_of_birth": "1985-02-12", "tier": "gold"}


def records() -> list[SourceRecord]:
    found = []
    for i, (system, table, row) in enumerate((("crm", "customers", CRM),
                                              ("loyalty", "members", LOYALTY))):
        version = RecordVersion(1_000 + i, i)
        found.append(SourceRecord(RecordKey(system, table, str(row["id"])), row, version, version,
                                  KafkaPosition(f"cdc.{system}.{table}", 0, i)))
    return found


def test_every_identifier_of_the_records_and_the_profile_is_known_normalised():
    identities = [extract_identity(r.key.system, r.key.table, r.row) for r in records()]
    profile = build_profile("cus_1", records(), date(2025, 1, 1))

    known = known_identifiers(identities, profile)

    assert known.emails == {"zoe@example.org"}
    assert known.phones == {"+447700900101"}
    assert known.loyalty_numbers == {"LY70001"}
    assert known.national_ids == {"QQ123456A"}
    assert known.passports == frozenset()
    # both records' dates of birth, not only the one the profile shows
    assert known.dates_of_birth == {"1985-02-11", "1985-02-12"}
    assert known.address_lines == {"1 quay st"}
    assert known.postcodes == {"LS1 4AB"}
    # display names from the profile and folded ones from the graph
    assert {"Zoë", "O'Brien", "zoe", "obrien"} <= known.names


def test_a_profile_alone_gives_its_contacts_and_membership_number():
    profile = {"golden": {"given_name": {"value": " Ann "}, "loyalty": {"member_number": "LY-9"},
                          "date_of_birth": {"value": "1990-05-01"}},
               "emails": [{"value": "ann@example.org"}], "phones": [{"value": "+15550100"}],
               "addresses": [{"value": {"line": "9 Mill Road", "postcode": "YO1 7HH",
                                        "country": "GB"}}]}

    known = known_identifiers([], profile)

    assert known == KnownIdentifiers(
        names=frozenset({"Ann"}), emails=frozenset({"ann@example.org"}),
        phones=frozenset({"+15550100"}), loyalty_numbers=frozenset({"LY9"}),
        dates_of_birth=frozenset({"1990-05-01"}), address_lines=frozenset({"9 mill rd"}),
        postcodes=frozenset({"YO1 7HH"}))


def test_nothing_known_is_false():
    assert not known_identifiers([], None)
    assert known_identifiers([], {"emails": [{"value": "a@b.co"}]})
