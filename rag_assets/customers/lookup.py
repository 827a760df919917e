"""Finding a customer's profile by customer id, email, phone, loyalty number or record, and
what the product knows of a customer (`customer_known_identifiers`, for masking their turns).

A reference is read one way (`reference_meanings`, also the suppression hashes' reading): a
customer id (`cus_…`), a source record (`system.table:pk`, or `short:pk` with a table's
`short_reference` in the catalogue), an email (anything with an `@`), or else a loyalty number
or a phone number. Every identifier is normalised the way the identity graph normalised it, and
the query is parameterised: a reference is data, never SQL. A reference that fits more than one
customer resolves to none.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from rag_assets.catalogue import active_catalogue
from rag_assets.customers.identifiers import (
    EMAIL,
    LOYALTY_NUMBER,
    PHONE,
    normalize_document_number,
    normalize_email,
    normalize_phone,
)
from rag_assets.customers.identity_store import identity_from_text
from rag_assets.customers.known_identifiers import KnownIdentifiers, known_identifiers

MAX_REFERENCE_CHARS = 320
CUSTOMER_ID = "customer_id"
RECORD = "record"
IDENTIFIER_KINDS = (EMAIL, LOYALTY_NUMBER, PHONE)
RECORD_REF = re.compile(r"^(?P<system>[a-z][a-z0-9_]*)(?:\.(?P<table>[a-z][a-z0-9_]*))?:(?P<pk>.+)$")


class InvalidReference(ValueError):
    """The reference is empty, too long, or holds characters no identifier has."""


def checked_reference(ref: str) -> str:
    """The reference without surrounding space; `InvalidReference` when it cannot be one."""
    ref = ref.strip()
    if not ref or len(ref) > MAX_REFERENCE_CHARS or any(ord(c) < 32 for c in ref):
        raise InvalidReference("a customer reference is 1 to 320 printable characters")
    return ref


def reference_meanings(ref: str) -> set[tuple[str, str]]:
    """What a (stripped) reference stands for, as (kind, normalised value) pairs — the one
    reading of a reference, shared by the look-up, erasure and the suppression list's hashes
    (`reference_hashes.ref_keys`). An `@` makes it an email and nothing else; `cus_…` a
    customer id; `system[.table]:pk` a source record; anything else a loyalty number or a phone
    (under the catalogue's phone region, as the identity graph reads numbers)."""
    if "@" in ref:
        return {(EMAIL, email)} if (email := normalize_email(ref)) else set()
    if ref.startswith("cus_"):
        return {(CUSTOMER_ID, ref)}
    if record := record_key_of_reference(ref):
        return {(RECORD, record)}
    meanings = set()
    if loyalty := normalize_document_number(ref):
        meanings.add((LOYALTY_NUMBER, loyalty))
    if phone := normalize_phone(ref, active_catalogue().default_phone_region):
        meanings.add((PHONE, phone))
    return meanings


def candidate_identifiers(ref: str) -> list[tuple[str, str]]:
    """The (kind, normalised value) identifiers a reference may be (`reference_meanings`), each
    looked up in `identity_lookup`."""
    return sorted(pair for pair in reference_meanings(ref) if pair[0] in IDENTIFIER_KINDS)


def record_key_of_reference(
    ref: str, short_references: Mapping[str, tuple[str, str]] | None = None
) -> str | None:
    """The record key text a record reference names: `system.table:pk` as it is, `short:pk`
    through the short references (the catalogue's by default); None for anything else."""
    match = RECORD_REF.match(ref)
    if match is None:
        return None
    if match["table"]:
        return f"{match['system']}.{match['table']}:{match['pk']}"
    if short_references is None:
        short_references = active_catalogue().short_references
    table = short_references.get(match["system"])
    return f"{table[0]}.{table[1]}:{match['pk']}" if table else None


def resolve_customer_id(cur, ref: str) -> str | None:
    ref = checked_reference(ref)
    if ref.startswith("cus_"):
        cur.execute("SELECT customer_id FROM customer_profiles WHERE customer_id = %s", (ref,))
        row = cur.fetchone()
        if row:
            return row[0]
    found = customers_named(cur, ref)
    # A reference that fits two customers answers for neither: never guess whose data to show.
    return next(iter(found)) if len(found) == 1 else None


def customers_named(cur, ref: str) -> set[str]:
    """The customers holding the records a checked reference names: the source record it is,
    or every record holding an identifier it may be (`candidate_identifiers`)."""
    keys = [key for key in [record_key_of_reference(ref)] if key]
    for kind, value in candidate_identifiers(ref):
        cur.execute("SELECT record_key FROM identity_lookup WHERE kind = %s AND value = %s",
                    (kind, value))
        keys.extend(row[0] for row in cur.fetchall())
    if not keys:
        return set()
    cur.execute("SELECT DISTINCT customer_id FROM customer_assignments WHERE record_key = ANY(%s)",
                (keys,))
    return {row[0] for row in cur.fetchall()}


def find_profile(cur, ref: str) -> dict | None:
    """The stored profile (with version and updated_at) for a reference, or None."""
    customer_id = resolve_customer_id(cur, ref)
    if customer_id is None:
        return None
    cur.execute("SELECT profile, version, updated_at FROM customer_profiles WHERE customer_id = %s",
                (customer_id,))
    row = cur.fetchone()
    if row is None:
        return None
    profile, version, updated_at = row
    return {**profile, "profile_version": version, "updated_at": updated_at.isoformat()}


def customer_known_identifiers(cur, customer_id: str) -> KnownIdentifiers:
    """Every identifier the identity graph (the identity of each record in the customer's
    cluster) and the stored profile hold for the customer."""
    cur.execute("SELECT n.identity::text FROM customer_assignments a"
                " JOIN identity_nodes n USING (record_key) WHERE a.customer_id = %s",
                (customer_id,))
    identities = [identity_from_text(text) for (text,) in cur.fetchall()]
    cur.execute("SELECT profile FROM customer_profiles WHERE customer_id = %s", (customer_id,))
    row = cur.fetchone()
    return known_identifiers(identities, row[0] if row else None)
