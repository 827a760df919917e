"""Right to be forgotten: what to erase for one customer reference (pure, no I/O).

An erasure request names a customer by any reference the product accepts (customer id `cus_…`,
source record `short:pk` / `system.table:pk`, email, loyalty number, phone). The application
step (`erase_customer.py`) resolves it to a customer id with `lookup.py`, reads the cluster's
member records, their identity-lookup rows and the profile, and hands them to `plan_erasure`,
which returns an `ErasureTarget`:

* `record_keys` — every source record of the customer ("system.table:pk"), deleted and kept
  as erased so a redelivered CDC event cannot bring them back;
* `identifiers` — every (kind, normalised value) the identity graph holds for them (email,
  phone, loyalty number, national id, passport), plus the profile's emails and phones;
* `refs` — every string the assistant app may have used as `customer_ref` in a feedback event
  (the forms `customer_ref` takes: email, loyalty number, phone, `short:<pk>`, customer id), raw
  and normalised, whose keyed hashes go to the feedback suppression list
  (`erased_reference_hashes`);
* `names` — the full names (`given surname`, folded) of their source records, by which their
  dead letters are found (`dead_letter_ties.name_ties`).

`RefMatcher` decides whether a `customer_ref` seen in feedback data points at an erased
customer: by exact string, or by the normalised identifier it stands for, so
`" Alice@Example.org"` matches an erased `alice@example.org`. It compares keyed hashes (HMAC
under `RAG_ERASURE_HASH_KEY`) of those forms, so the suppression list holds no reference. It is
built from the suppression list alone, so a lake rewrite that failed half-way can be retried
after the customer's graph rows are gone. The key must stay the same for the life of the
deployment: under another key, the list no longer matches anyone.

The erasure request keeps only keyed hashes of the identifiers (`hash_identifiers`), never the
raw personal data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import uuid
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
from rag_assets.customers.lookup import record_key_of_reference
from rag_assets.customers.source_state import RecordKey

# Identifier kinds that the app may use as a feedback `customer_ref` (national ids and
# passports are erased from the graph but never written to the suppression list).
REF_KINDS = frozenset({EMAIL, PHONE, LOYALTY_NUMBER})
CUSTOMER_ID = "customer_id"
RECORD = "record"
MAX_REQUEST_ID_CHARS = 200
HASH_KEY_ENV = "RAG_ERASURE_HASH_KEY"


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


def ref_keys(ref: str | None) -> set[tuple[str, str]]:
    """What a `customer_ref` stands for, as (kind, normalised value) pairs.

    An `@` makes it an email; `cus_…` a customer id; `system[.table]:pk` a source record;
    anything else a loyalty number or a phone. The exact string is always a key of its own.
    """
    if ref is None or not isinstance(ref, str):
        return set()
    text = ref.strip()
    if not text:
        return set()
    keys = {("ref", text)}
    if "@" in text:
        if email := normalize_email(text):
            keys.add((EMAIL, email))
        return keys
    if text.startswith("cus_"):
        keys.add((CUSTOMER_ID, text))
        return keys
    if record := record_key_of_reference(text):
        keys.add((RECORD, record))
        return keys
    if loyalty := normalize_document_number(text):
        keys.add((LOYALTY_NUMBER, loyalty))
    if phone := normalize_phone(text):
        keys.add((PHONE, phone))
    return keys


def ref_digests(ref: str | None, key: bytes | None = None) -> set[str]:
    """Keyed hashes (`hash_identifier`) of what a `customer_ref` stands for (`ref_keys`): the
    suppression list holds these, never a reference."""
    return {hash_identifier(kind, value, key) for kind, value in ref_keys(ref)}


class RefMatcher:
    """Whether a feedback `customer_ref` points at an erased customer (see the module doc),
    from the keyed hashes of the erased references. `ref in matcher` asks the same."""

    def __init__(self, erased_digests: Iterable[str], key: bytes | None = None):
        self.digests = set(erased_digests)
        self._key = key if key is not None or not self.digests else _hash_key()

    @classmethod
    def of_refs(cls, refs: Iterable[str], key: bytes | None = None) -> RefMatcher:
        return cls(set().union(*(ref_digests(r, key) for r in refs)), key)

    def __bool__(self) -> bool:
        return bool(self.digests)

    def __len__(self) -> int:
        return len(self.digests)

    def matches(self, ref: str | None) -> bool:
        return bool(self.digests) and not self.digests.isdisjoint(ref_digests(ref, self._key))

    __contains__ = matches


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


def _hash_key() -> bytes:
    key = os.environ.get(HASH_KEY_ENV)
    if not key:
        raise RuntimeError(f"set {HASH_KEY_ENV}: the secret key under which erasure requests "
                           "keep hashes of the identifiers they erased")
    return key.encode()


def hash_identifier(kind: str, value: str, key: bytes | None = None) -> str:
    """Keyed SHA-256 of one identifier: lets an auditor check "was X erased?" given X and the
    key, without the request holding X itself."""
    digest = hmac.new(key or _hash_key(), f"{kind}:{value}".encode(), hashlib.sha256)
    return digest.hexdigest()


def hash_identifiers(target: ErasureTarget, key: bytes | None = None) -> list[str]:
    pairs = set(target.identifiers) | {("ref", r) for r in target.refs}
    return sorted(hash_identifier(kind, value, key) for kind, value in pairs)


@dataclass(frozen=True)
class ErasureRequest:
    customer_ref: str
    request_id: str


class InvalidErasureRequest(ValueError):
    """An erasure event that cannot be used (the reason is safe to log: it holds no PII)."""


def new_request_id() -> str:
    return f"erase-{uuid.uuid4().hex}"


def parse_erasure_event(value: bytes | None, fallback_id: str) -> ErasureRequest:
    """`{"customer_ref": ..., "request_id": ...}` from the `privacy.erasure` topic.

    `request_id` is optional; without one the request is named by `fallback_id` (its topic,
    partition and offset), so a redelivered event is the same request."""
    if value is None:
        raise InvalidErasureRequest("empty message")
    try:
        payload = json.loads(value)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidErasureRequest("not JSON") from None
    if not isinstance(payload, dict):
        raise InvalidErasureRequest("not a JSON object")
    ref = payload.get("customer_ref")
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidErasureRequest("customer_ref: a non-empty string is required")
    request_id = payload.get("request_id", fallback_id)
    if request_id is None:
        request_id = fallback_id
    if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
        raise InvalidErasureRequest("request_id: a string")
    request_id = str(request_id).strip()
    if not request_id or len(request_id) > MAX_REQUEST_ID_CHARS or not request_id.isprintable():
        raise InvalidErasureRequest(f"request_id: 1 to {MAX_REQUEST_ID_CHARS} printable characters")
    return ErasureRequest(ref.strip(), request_id)
