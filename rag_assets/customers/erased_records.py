"""The source records erased on request (`erased_records`): the guard that keeps them erased.

An erasure (`rag_assets/privacy`) remembers the keys of the records it deletes here
(`remember_erased`); `cdc_apply` drops every later CDC event of those keys (`skip_erased`), so a
redelivery or a rebuild from the topics cannot bring them back, and reports each dropped event
with the outcome `Outcome.ERASED` in its place (`with_erased_outcomes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rag_assets.customers.source_state import Outcome
from rag_assets.customers.source_store import key_arrays


def remember_erased(cur, record_keys: Iterable[str], request_id: str) -> None:
    """Keep the keys of records erased by `request_id`: their later events are skipped."""
    cur.execute(
        "INSERT INTO erased_records (system, table_name, pk, request_id)"
        " SELECT s, t, p, %s FROM unnest(%s::text[], %s::text[], %s::text[]) AS k(s, t, p)"
        " ON CONFLICT DO NOTHING", (request_id, *key_arrays(record_keys)))


def erased_keys(cur, keys: Iterable[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """Which of (system, table, pk) were erased on request."""
    keys = list(set(keys))
    if not keys:
        return set()
    cur.execute(
        "SELECT e.system, e.table_name, e.pk FROM erased_records e"
        " JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(system, table_name, pk)"
        " USING (system, table_name, pk)",
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]))
    return {tuple(row) for row in cur.fetchall()}


def skip_erased(cur, events: Sequence) -> tuple[list, int]:
    """The CDC events (`ChangeEvent`s) whose record was not erased, and how many were dropped.
    Truncates name no record and are kept."""
    keyed = {(e.system, e.table, e.pk) for e in events if e.op != "t" and e.pk is not None}
    erased = erased_keys(cur, keyed)
    if not erased:
        return list(events), 0
    kept = [e for e in events if e.op == "t" or (e.system, e.table, e.pk) not in erased]
    return kept, len(events) - len(kept)


def with_erased_outcomes(events: Sequence, outcomes: list) -> list:
    """One (event, outcome) per event of `events`, in order: the outcomes of the events that
    were applied, and `Outcome.ERASED` for the ones `skip_erased` dropped."""
    if len(outcomes) == len(events):
        return outcomes
    pending = list(outcomes)
    merged, i = [], 0
    for event in events:
        if i < len(pending) and pending[i][0] is event:
            merged.append(pending[i])
            i += 1
        else:
            merged.append((event, Outcome.ERASED))
    return merged
