"""Dead letters: input the pipeline could not use, kept with the reason so nothing is lost.

Domain parsers return a `DeadLetter` instead of raising; the asset that ran the parser stores it
(see `DeadLetterStore`), counts it in its metadata, and carries on with the rest of the batch.

A payload may hold personal data, so it does not stay forever: each letter is stored with the
keyed hashes of what ties it to a person (`ties`) so an erasure finds it (`delete_tied`,
`delete_holding`). Which values tie a letter to a person is not the platform's knowledge: the
caller passes the function that computes them (`ties_of`, required — the domains pass
`customers/dead_letter_ties.ties_of`), so no letter is stored untied. A replayed letter's payload is cleared (`mark_replayed`); and every payload is cleared
after the retention (`RAG_DEAD_LETTER_RETENTION_DAYS`, `expire_payloads`); a letter tied to a
person erased before it arrived is stored without its payload (`remember_erased_ties`). A
cleared letter keeps its reason and position.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

RETENTION_ENV = "RAG_DEAD_LETTER_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 36_500


@dataclass(frozen=True)
class DeadLetter:
    """One unusable input and why.

    `source` names the pipeline stage (e.g. "cdc", "feedback", "documents"). A Kafka record sets
    topic/partition/offset; an S3 object sets object_key/object_version. `payload` is the raw
    bytes as received (None for a tombstone or an object too large to keep). `record_key`
    (`system.table:pk`) and `customer_ref` say whose input it was, when the parser got that far;
    they are stored only as keyed hashes.
    """

    source: str
    reason: str
    payload: bytes | None = field(default=None, repr=False)
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    object_key: str | None = None
    object_version: str | None = None
    record_key: str | None = field(default=None, repr=False)
    customer_ref: str | None = field(default=None, repr=False)


# The keyed hashes that tie a letter to the persons it names.
LetterTies = Callable[[DeadLetter], list[str]]


def store_dead_letters(cur, letters: list[DeadLetter], run_id: str | None = None, *,
                       ties_of: LetterTies) -> int:
    """Insert dead letters with their ties (`ties_of`); one already stored for the same
    position is kept, not duplicated. A letter tied to a person erased before is stored
    without its payload."""
    tied = [(letter, ties_of(letter)) for letter in letters]
    erased = erased_ties(cur, {tie for _, ties in tied for tie in ties})
    stored = 0
    for letter, ties in tied:
        payload = None if letter.payload is None or erased & set(ties) else bytes(letter.payload)
        cur.execute(
            "INSERT INTO dead_letters (source, reason, topic, partition, \"offset\", object_key,"
            " object_version, payload, run_id, ties, payload_cleared_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            "         CASE WHEN %s THEN now() END) ON CONFLICT DO NOTHING",
            (letter.source, letter.reason, letter.topic, letter.partition, letter.offset,
             letter.object_key, letter.object_version, payload, run_id, ties,
             payload is None and letter.payload is not None),
        )
        stored += cur.rowcount
    return stored


def erased_ties(cur, ties: Iterable[str]) -> set[str]:
    """Those of the ties that belong to a person erased before."""
    cur.execute("SELECT tie FROM erased_letter_ties WHERE tie = ANY(%s)", (sorted(ties),))
    return {tie for (tie,) in cur.fetchall()}


def remember_erased_ties(cur, ties: Iterable[str], request_id: str) -> None:
    """Keep an erased person's ties, so a letter of theirs stored later loses its payload."""
    cur.execute("INSERT INTO erased_letter_ties (tie, request_id)"
                " SELECT unnest(%s::text[]), %s ON CONFLICT DO NOTHING",
                (sorted(ties), request_id))


def delete_tied(cur, any_of: list[str], all_of: Iterable[list[str]] = ()) -> int:
    """Delete the letters holding one of the ties `any_of`, or every tie of one of the lists
    `all_of`; how many went."""
    cur.execute("DELETE FROM dead_letters WHERE ties && %s::text[]", (any_of,))
    deleted = cur.rowcount
    for ties in all_of:
        cur.execute("DELETE FROM dead_letters WHERE ties @> %s::text[]", (ties,))
        deleted += cur.rowcount
    return deleted


def delete_holding(cur, needles: list[bytes]) -> int:
    """Delete the letters whose payload holds one of the byte strings; how many went."""
    if not needles:
        return 0
    cur.execute(
        "DELETE FROM dead_letters d WHERE d.payload IS NOT NULL AND EXISTS"
        " (SELECT 1 FROM unnest(%s::bytea[]) AS n(b) WHERE position(n.b IN d.payload) > 0)",
        (needles,))
    return cur.rowcount


def pending_dead_letters(cur, source: str | None = None) -> list[dict]:
    cur.execute(
        "SELECT id, source, reason, topic, partition, \"offset\", object_key, object_version,"
        " payload, created_at FROM dead_letters WHERE replayed_at IS NULL"
        " AND (%s::text IS NULL OR source = %s) ORDER BY id",
        (source, source),
    )
    columns = [c.name for c in cur.description]
    return [dict(zip(columns, row)) for row in cur.fetchall()]


def mark_replayed(cur, ids: Iterable[int], result: str) -> None:
    """Mark letters replayed: their reason, position and ties stay, their payload goes."""
    cur.execute("UPDATE dead_letters SET replayed_at = now(), replay_result = %s, payload = NULL,"
                " payload_cleared_at = CASE WHEN payload IS NULL THEN payload_cleared_at"
                " ELSE now() END WHERE id = ANY(%s)", (result, list(ids)))


# --------------------------------------------------------------------------- retention


def retention_days(environ: Mapping[str, str] | None = None) -> int:
    """Days a payload is kept: `RAG_DEAD_LETTER_RETENTION_DAYS` (unset or empty: 30)."""
    raw = (os.environ if environ is None else environ).get(RETENTION_ENV, "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    if not re.fullmatch(r"[0-9]+", raw) or not 1 <= int(raw) <= MAX_RETENTION_DAYS:
        raise ValueError(f"{RETENTION_ENV} must be a whole number of days from 1 to "
                         f"{MAX_RETENTION_DAYS}, not {raw[:40]!r}")
    return int(raw)


def expire_payloads(cur, days: int) -> int:
    """Clear the payloads stored more than `days` ago; the letters stay. Returns how many."""
    cur.execute("UPDATE dead_letters SET payload = NULL, payload_cleared_at = now()"
                " WHERE payload IS NOT NULL AND created_at < now() - make_interval(days => %s)",
                (days,))
    return cur.rowcount
