"""Finding a customer's profile by customer id, email, phone, loyalty number or record.

A reference is resolved, in order, as: a customer id (`cus_…`), a source record
(`crm:1001` or `crm.customers:1001`), an email, a loyalty number, a phone number. Every
identifier is normalised the way the identity graph normalised it, and the query is
parameterised: a reference is data, never SQL. A reference that fits more than one customer
resolves to none.
"""

from __future__ import annotations

import re

from rag_assets.customers.identifiers import (
    EMAIL,
    LOYALTY_NUMBER,
    PHONE,
    normalize_document_number,
    normalize_email,
    normalize_phone,
)

MAX_REFERENCE_CHARS = 320
RECORD_REF = re.compile(r"^(?P<system>[a-z][a-z0-9_]*)(?:\.(?P<table>[a-z][a-z0-9_]*))?:(?P<pk>.+)$")
DEFAULT_TABLE = {"crm": "customers", "loyalty": "members", "booking": "bookings", "support": "tickets"}


class InvalidReference(ValueError):
    """The reference is empty, too long, or holds characters no identifier has."""


def _candidate_identifiers(ref: str) -> list[tuple[str, str]]:
    candidates = []
    if "@" in ref and (email := normalize_email(ref)):
        candidates.append((EMAIL, email))
    if loyalty := normalize_document_number(ref):
        candidates.append((LOYALTY_NUMBER, loyalty))
    if phone := normalize_phone(ref):
        candidates.append((PHONE, phone))
    return candidates


def _record_key_text(ref: str) -> str | None:
    match = RECORD_REF.match(ref)
    if match is None:
        return None
    system = match["system"]
    table = match["table"] or DEFAULT_TABLE.get(system)
    return f"{system}.{table}:{match['pk']}" if table else None


def resolve_customer_id(cur, ref: str) -> str | None:
    ref = ref.strip()
    if not ref or len(ref) > MAX_REFERENCE_CHARS or any(ord(c) < 32 for c in ref):
        raise InvalidReference("a customer reference is 1 to 320 printable characters")
    if ref.startswith("cus_"):
        cur.execute("SELECT customer_id FROM customer_profiles WHERE customer_id = %s", (ref,))
        row = cur.fetchone()
        if row:
            return row[0]
    keys = [k for k in [_record_key_text(ref)] if k]
    for kind, value in _candidate_identifiers(ref):
        cur.execute("SELECT record_key FROM identity_lookup WHERE kind = %s AND value = %s",
                    (kind, value))
        keys.extend(r[0] for r in cur.fetchall())
    if not keys:
        return None
    cur.execute("SELECT DISTINCT customer_id FROM customer_assignments WHERE record_key = ANY(%s)",
                (keys,))
    found = [row[0] for row in cur.fetchall()]
    # A reference that fits two customers answers for neither: never guess whose data to show.
    return found[0] if len(found) == 1 else None


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
