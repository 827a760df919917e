"""Resolving an erasure's reference to one person, and reading what the stores hold of them.

`matching_customers` reads a reference as `lookup.resolve_customer_id` does (customer id, then
`lookup.customers_named`) but reports every customer the reference fits, so an ambiguous
reference is refused instead of erasing the wrong person. `load_target` reads the person's
member records, their rows, identity-lookup rows and profile, and plans the erasure
(`plan.plan_erasure`).
"""

from __future__ import annotations

from rag_assets.customers import source_store
from rag_assets.customers.lookup import (
    checked_reference,
    customers_named,
    record_key_of_reference,
)
from rag_assets.privacy.plan import ErasureTarget, plan_erasure


def matching_customers(cur, ref: str) -> tuple[set[str], str | None]:
    """(customer ids the reference fits, the record key it names if it names one).
    `InvalidReference` when it cannot be a reference."""
    ref = checked_reference(ref)
    if ref.startswith("cus_"):
        cur.execute("SELECT customer_id FROM customer_profiles WHERE customer_id = %s"
                    " UNION SELECT customer_id FROM customer_assignments WHERE customer_id = %s",
                    (ref, ref))
        found = {row[0] for row in cur.fetchall()}
        if found:
            return found, None
    return customers_named(cur, ref), record_key_of_reference(ref)


def load_target(cur, ref: str) -> ErasureTarget | None:
    """The erasure plan for a reference; None when it fits more than one customer."""
    customers, record = matching_customers(cur, ref)
    if len(customers) > 1:
        return None
    customer_id = next(iter(customers), None)
    keys = member_records(cur, customer_id)
    if record is not None:
        keys |= source_store.stored_keys(cur, [record])
    rows, lookups, profile = {}, [], None
    if keys:
        rows = source_store.rows_by_key(cur, keys)
        cur.execute("SELECT kind, value FROM identity_lookup WHERE record_key = ANY(%s)",
                    (sorted(keys),))
        lookups = cur.fetchall()
    if customer_id is not None:
        cur.execute("SELECT profile FROM customer_profiles WHERE customer_id = %s", (customer_id,))
        row = cur.fetchone()
        profile = row[0] if row else None
    return plan_erasure(ref, customer_id, keys, lookups, profile, rows)


def member_records(cur, customer_id: str | None) -> set[str]:
    """The record keys assigned to the customer (none for None)."""
    if customer_id is None:
        return set()
    cur.execute("SELECT record_key FROM customer_assignments WHERE customer_id = %s",
                (customer_id,))
    return {row[0] for row in cur.fetchall()}
