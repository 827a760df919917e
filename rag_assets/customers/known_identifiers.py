"""What the product knows of one customer, as identifiers to mask in their own words (pure).

`known_identifiers(identities, profile)` gathers, from the identity evidence of every source
record of the customer's cluster (`PersonIdentity`, as the identity graph keeps it) and from
their stored profile, every value that identifies them: names, e-mails, phones, loyalty
numbers, national ids, passports, dates of birth, address lines and postcodes. Values are kept
in the graph's normalised form (`identifiers.py`), so one value stands for every spelling:
the masker (`rag_assets/feedback/pii_known.py`) matches the spellings.

Which profile fields hold a membership number is the catalogue's: the fields of its membership
tables whose column is a loyalty number (`profile_contacts`, also read by the erasure plan).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rag_assets.catalogue import active_catalogue
from rag_assets.catalogue.model import MEMBERSHIP
from rag_assets.customers.identifiers import (
    EMAIL,
    LOYALTY_NUMBER,
    NATIONAL_ID,
    PASSPORT,
    PHONE,
    PersonIdentity,
    normalize_address_line,
    normalize_date_of_birth,
    normalize_document_number,
    normalize_postcode,
)


@dataclass(frozen=True)
class KnownIdentifiers:
    """One customer's identifiers, normalised as the identity graph normalises them."""

    names: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()  # E.164
    loyalty_numbers: frozenset[str] = frozenset()
    national_ids: frozenset[str] = frozenset()
    passports: frozenset[str] = frozenset()
    dates_of_birth: frozenset[str] = frozenset()  # ISO
    address_lines: frozenset[str] = frozenset()
    postcodes: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in self.__dataclass_fields__)


_KIND_FIELDS = {EMAIL: "emails", PHONE: "phones", LOYALTY_NUMBER: "loyalty_numbers",
                NATIONAL_ID: "national_ids", PASSPORT: "passports"}


def known_identifiers(identities: Iterable[PersonIdentity],
                      profile: Mapping[str, Any] | None = None) -> KnownIdentifiers:
    """Everything the records' identities and the profile hold that identifies the customer."""
    found: dict[str, set[str]] = {name: set() for name in KnownIdentifiers.__dataclass_fields__}
    for identity in identities:
        _add_identity(found, identity)
    if profile:
        _add_profile(found, profile)
    return KnownIdentifiers(**{name: frozenset(v for v in values if v)
                               for name, values in found.items()})


def _add_identity(found: dict[str, set[str]], identity: PersonIdentity) -> None:
    for kind, value in identity.identifiers:
        if kind in _KIND_FIELDS:
            found[_KIND_FIELDS[kind]].add(value)
    found["names"] |= {identity.given_name, identity.surname}
    found["dates_of_birth"].add(identity.date_of_birth)
    found["address_lines"].add(identity.address_line)
    found["postcodes"].add(identity.postcode)


def _add_profile(found: dict[str, set[str]], profile: Mapping[str, Any]) -> None:
    golden = profile.get("golden") or {}
    for field_name in ("given_name", "surname"):
        found["names"].add(_text(_golden_value(golden, field_name)))
    found["dates_of_birth"].add(normalize_date_of_birth(_golden_value(golden, "date_of_birth")))
    addresses = [_value(item) for item in profile.get("addresses") or []]
    for address in [*addresses, _golden_value(golden, "address")]:
        if isinstance(address, Mapping):
            found["address_lines"].add(normalize_address_line(address.get("line")))
            found["postcodes"].add(normalize_postcode(address.get("postcode"),
                                                      address.get("country")))
    for kind, value in profile_contacts(profile):
        found[_KIND_FIELDS[kind]].add(value)


def profile_contacts(profile: Mapping[str, Any] | None) -> set[tuple[str, str]]:
    """(kind, value) of the e-mails, phones and membership numbers a stored profile shows."""
    if not profile:
        return set()
    found = set()
    for kind, field_name in ((EMAIL, "emails"), (PHONE, "phones")):
        for item in profile.get(field_name) or []:
            value = _value(item)
            if isinstance(value, str) and value:
                found.add((kind, value))
    golden = profile.get("golden") or {}
    for section, column in _membership_numbers():
        fields = golden.get(section)
        number = fields.get(column) if isinstance(fields, Mapping) else None
        if number is not None and (normalised := normalize_document_number(number)):
            found.add((LOYALTY_NUMBER, normalised))
    return found


def _membership_numbers() -> list[tuple[str, str]]:
    """(golden section, profile field) of every membership number a profile shows: the fields
    of the catalogue's membership tables whose column is a loyalty number."""
    found = []
    for table in active_catalogue().tables:
        role = table.profile
        if role.role == MEMBERSHIP:
            found += [(role.section, name) for name, column in role.fields
                      if column in table.identity.loyalty_number]
    return found


def _value(item: Any) -> Any:
    return item.get("value") if isinstance(item, Mapping) else item


def _golden_value(golden: Mapping[str, Any], field_name: str) -> Any:
    return _value(golden.get(field_name))


def _text(raw: Any) -> str | None:
    return raw.strip() or None if isinstance(raw, str) else None
