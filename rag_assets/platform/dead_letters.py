"""Dead letters: input the pipeline could not use, kept with the reason so nothing is lost.

Domain parsers return a `DeadLetter` instead of raising; the asset that ran the parser stores it
(see `DeadLetterStore`), counts it in its metadata, and carries on with the rest of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeadLetter:
    """One unusable input and why.

    `source` names the pipeline stage (e.g. "cdc", "feedback", "documents"). A Kafka record sets
    topic/partition/offset; an S3 object sets object_key/object_version. `payload` is the raw
    bytes as received (None for a tombstone or an object too large to keep).
    """

    source: str
    reason: str
    payload: bytes | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    object_key: str | None = None
    object_version: str | None = None


def store_dead_letters(cur, letters: list[DeadLetter], run_id: str | None = None) -> int:
    """Insert dead letters; one already stored for the same position is kept, not duplicated."""
    stored = 0
    for letter in letters:
        cur.execute(
            "INSERT INTO dead_letters (source, reason, topic, partition, \"offset\", object_key,"
            " object_version, payload, run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (letter.source, letter.reason, letter.topic, letter.partition, letter.offset,
             letter.object_key, letter.object_version,
             None if letter.payload is None else bytes(letter.payload), run_id),
        )
        stored += cur.rowcount
    return stored


def pending_dead_letters(cur, source: str | None = None) -> list[dict]:
    cur.execute(
        "SELECT id, source, reason, topic, partition, \"offset\", object_key, object_version,"
        " payload, created_at FROM dead_letters WHERE replayed_at IS NULL"
        " AND (%s::text IS NULL OR source = %s) ORDER BY id",
        (source, source),
    )
    columns = [c.name for c in cur.description]
    return [dict(zip(columns, row)) for row in cur.fetchall()]
