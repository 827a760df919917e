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
