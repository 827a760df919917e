"""Right to be forgotten: what to erase for one customer reference (pure, no I/O).

An erasure request names a customer by any reference the product accepts (customer id `cus_…`,
source record `short:pk` / `system.table:pk`, email, loyalty number, phone). `resolution.py`
resolves it to a customer id (`lookup.py`'s rules), reads the cluster's member records, their
identity-lookup rows and the profile, and hands them to `plan_erasure`, which returns an
`ErasureTarget`:

* `record_keys` — every source record of the customer ("system.table:pk"), deleted and kept
  as erased so a redelivered CDC event cannot bring them back;
* `identifiers` — every (kind, normalised value) the identity graph holds for them (email,
  phone, loyalty number, national id, passport), plus the profile's emails and phones;
* `refs` — every string the assistant app may have used as `customer_ref` in a feedback event
  (the forms `customer_ref` takes: email, loyalty number, phone, `short:<pk>`, customer id), raw
  and normalised, whose keyed hashes go to the feedback suppression list
  (`erased_reference_hashes`, `feedback/suppression.py`);
* `names` — the full names (`given surname`, folded) of their source records, by which their
  dead letters are found (`dead_letter_erasure.name_ties`).

The erasure request keeps only keyed hashes of the identifiers (`hash_identifiers`, under
`RAG_ERASURE_HASH_KEY`: `customers/reference_hashes.py`), never the raw personal data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rag_assets.catalogue import active_catalogue
from rag_assets.customers.identifiers import (
    EMAIL,
    LOYALTY_NUMBER,
    PHONE,
    IdentityColumns,
    extract_identity,
    normalize_country,
    normalize_document_number,
    normalize_email,
    normalize_phone,
)
from rag_assets.customers.known_identifiers import profile_contacts
from rag_assets.customers.reference_hashes import hash_identifier
from rag_assets.customers.source_state import RecordKey

# Identifier kinds that the app may use as a feedback `customer_ref` (national ids and
# passports are erased from the graph but never written to the suppression list).
REF_KINDS = frozenset({EMAIL, PHONE, LOYALTY_NUMBER})


@dataclass(frozen=True)
class ErasureTarget:
    """Everything one erasure removes. `customer_id` is None when the reference matched no
    customer: then only the feedback data under the reference itself is erased."""

    reference: str
    customer_id: str | None
    record_keys: frozenset[str]
    identifiers: frozenset[tuple[str, str]]
    refs: frozenset[str]
    names: frozenset[str] = frozenset()


def record_key_refs(record_key: str) -> set[str]:
    """The reference forms of a record key: `system.table:1` and its short forms (`short:1`
    for every short_reference of the table in the catalogue)."""
    refs, key = {record_key}, RecordKey.parse(record_key)
    for short, table in active_catalogue().short_references.items():
        if table == (key.system, key.table):
            refs.add(f"{short}:{key.pk}")
    return refs


def _raw_values(system: str, table: str, row: Mapping[str, Any] | None,
                columns: Mapping[tuple[str, str], IdentityColumns]) -> set[tuple[str, str, str]]:
    """(kind, raw text, normalised) of the email, phone and loyalty columns of a source row."""
    mapping = columns.get((system, table))
    if mapping is None or not row:
        return set()
    region = ((normalize_country(row.get(mapping.country)) if mapping.country else None)
              or mapping.phone_region or active_catalogue().default_phone_region)
    found = set()
    for kind, names, normalise in (
        (EMAIL, mapping.email, normalize_email),
        (PHONE, mapping.phone, lambda raw: normalize_phone(raw, region)),
        (LOYALTY_NUMBER, mapping.loyalty_number, normalize_document_number),
    ):
        for name in names:
            raw = row.get(name)
            if raw is None or isinstance(raw, bool):
                continue
            text = str(raw).strip()
            normalised = normalise(raw)
            if text and normalised:
                found.add((kind, text, normalised))
    return found


def plan_erasure(reference: str, customer_id: str | None, record_keys: Iterable[str],
                 lookup_rows: Iterable[tuple[str, str]], profile: Mapping[str, Any] | None = None,
                 source_rows: Mapping[str, Mapping[str, Any] | None] | None = None,
                 columns: Mapping[tuple[str, str], IdentityColumns] | None = None
                 ) -> ErasureTarget:
    """The erasure of one customer from what the stores hold about them.

    `record_keys`: the customer's member records; `lookup_rows`: their `identity_lookup`
    (kind, value) rows (blocking keys are ignored); `profile`: the stored profile;
    `source_rows`: record key → row data, for the raw spellings of emails, phones and loyalty
    numbers (the app may send a reference exactly as the source system stores it).
    """
    if columns is None:
        columns = active_catalogue().identity_columns
    record_keys = frozenset(record_keys)
    identifiers = {(kind, value) for kind, value in lookup_rows if kind != "block"}
    identifiers |= profile_contacts(profile)
    refs, names = {reference.strip()}, set()
    if customer_id is not None:
        refs.add(customer_id)
    for key in record_keys:
        refs |= record_key_refs(key)
    for key, row in (source_rows or {}).items():
        record = RecordKey.parse(key)
        for kind, raw, normalised in _raw_values(record.system, record.table, row, columns):
            identifiers.add((kind, normalised))
            refs.add(raw)
        names |= _full_names(record.system, record.table, row, columns)
    for kind, value in identifiers:
        if kind in REF_KINDS:
            refs.add(value)
            if kind == EMAIL:
                refs.add(value.lower())
    refs.discard("")
    return ErasureTarget(reference.strip(), customer_id, record_keys, frozenset(identifiers),
                         frozenset(refs), frozenset(names))


def _full_names(system: str, table: str, row: Mapping[str, Any] | None,
                columns: Mapping[tuple[str, str], IdentityColumns]) -> set[str]:
    """The row's `given surname` (folded), when it has both."""
    if not row:
        return set()
    identity = extract_identity(system, table, row, columns=columns)
    if identity.given_name and identity.surname:
        return {f"{identity.given_name} {identity.surname}"}
    return set()


def hash_identifiers(target: ErasureTarget, key: bytes | None = None) -> list[str]:
    pairs = set(target.identifiers) | {("ref", r) for r in target.refs}
    return sorted(hash_identifier(kind, value, key) for kind, value in pairs)
