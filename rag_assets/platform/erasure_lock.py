"""The lock that makes an erasure atomic with respect to every writer of customer data.

A writer (CDC apply, identity linking, profile build, feedback apply) takes it shared before
anything else its transaction does; an erasure takes it exclusive. An erasure therefore waits
until every writer transaction in flight has committed, and no writer starts reading its
suppression checks (`erased_records`, `erased_customers`) or customer rows until the erasure has
committed — a writer's check-then-write can no longer straddle an erasure's commit and bring
the person back. PostgreSQL queues an exclusive request ahead of shared requests made after it,
so a steady stream of writers cannot starve an erasure.

The locks are transaction-scoped advisory locks, one per schema: released at commit or rollback,
reentrant within a transaction. A writer must take its lock before its first write that an
erasure's statements could wait on, or the two deadlock — hence "first thing in the
transaction", before the offsets ledger's claim.
"""

from __future__ import annotations


def lock_for_writing(cur) -> None:
    """Shared: writers proceed together; none overlaps an erasure."""
    cur.execute("SELECT pg_advisory_xact_lock_shared("
                "hashtext('customer-data-erasure:' || current_schema()))")


def lock_for_erasure(cur) -> None:
    """Exclusive: waits for the writers in flight, holds back new ones until commit. Also
    serialises erasures with each other."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('customer-data-erasure:' || current_schema()))")
