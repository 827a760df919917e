"""The feedback suppression list: the customer references erased on request, and what feedback
forgets of a person.

`erased_reference_hashes` (this domain's `schema.sql`) holds the keyed hashes of every form of
every erased reference (`customers/reference_hashes.py`), never a reference. `RefMatcher` decides
whether a `customer_ref` seen in feedback data points at an erased customer: by exact string, or
by the normalised identifier it stands for, so `" Alice@Example.org"` matches an erased
`alice@example.org`. It is built from the list alone, so a lake rewrite that failed half-way can
be retried after the customer's graph rows are gone.

Why the list lives here and not in `rag_assets/privacy`: its readers are feedback's own steps —
ingest drops an erased person's new turns, the fine-tuning export leaves them out — and the
privacy package (the erasure) sits above feedback and writes the list through `forget_turns`
and `suppress`. Kept in privacy, feedback would import the package that imports it (a cycle);
kept here, feedback needs nothing above it and erasure reaches feedback through this module.
"""

from __future__ import annotations

from collections.abc import Iterable

from rag_assets.customers.reference_hashes import hash_key, ref_digests
from rag_assets.feedback import kpi_store
from rag_assets.feedback.windows import windows_of


class RefMatcher:
    """Whether a feedback `customer_ref` points at an erased customer (see the module doc),
    from the keyed hashes of the erased references. `ref in matcher` asks the same."""

    def __init__(self, erased_digests: Iterable[str], key: bytes | None = None):
        self.digests = set(erased_digests)
        self._key = key if key is not None or not self.digests else hash_key()

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


def suppression_list(cur) -> RefMatcher:
    """The erased references, as a matcher over their keyed hashes."""
    cur.execute("DELETE FROM erased_customers RETURNING customer_ref")  # kept in clear before
    legacy = [ref for (ref,) in cur.fetchall()]
    if legacy:
        suppress(cur, legacy)
    return committed_suppressions(cur)


def committed_suppressions(cur) -> RefMatcher:
    """The suppression list as committed, read without writing anything (so without the erasure
    lock a writer takes first); `suppression_list` under that lock is what a writer trusts."""
    cur.execute("SELECT digest FROM erased_reference_hashes")
    return RefMatcher(digest for (digest,) in cur.fetchall())


def suppress(cur, refs: Iterable[str]) -> None:
    """Add the keyed hashes of `refs` (every form each stands for) to the suppression list."""
    digests = sorted(RefMatcher.of_refs(refs).digests)
    cur.execute("INSERT INTO erased_reference_hashes (digest) SELECT * FROM unnest(%s::text[])"
                " ON CONFLICT DO NOTHING", (digests,))


def forget_turns(cur, refs: Iterable[str]) -> dict:
    """Forget a person in PostgreSQL: every stored turn under one of `refs` or under a spelling
    of them goes, those spellings join the suppression list, and the KPI windows the turns were
    counted in are queued (recomputed by the next KPI run). Counts only."""
    matcher = RefMatcher.of_refs(refs)
    cur.execute("SELECT DISTINCT customer_ref FROM feedback_turns WHERE customer_ref IS NOT NULL")
    seen = [ref for (ref,) in cur.fetchall() if matcher.matches(ref)]
    refs = sorted(set(refs) | set(seen))
    suppress(cur, refs)
    cur.execute("DELETE FROM feedback_turns WHERE customer_ref = ANY(%s) RETURNING event_time",
                (refs,))
    times = [row[0] for row in cur.fetchall()]
    kpi_store.queue_windows(cur, {w for moment in times for w in windows_of(moment)})
    return {"feedback_turns_deleted": len(times), "suppressed_refs": len(refs)}
