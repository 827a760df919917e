"""What a streaming sensor's micro-batches share: one connection, the tick's id, the outbox.

Domain streams (`rag_assets/*/streaming.py`) apply each micro-batch with the same functions the
assets' runs use, in short transactions on this session's connection, and record in each
transaction what it changed for the lineage (`lineage_outbox`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from rag_assets.platform import lineage_outbox
from rag_assets.platform.pg_connection import in_transaction


class HasMetadata(Protocol):
    def metadata(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LagReport:
    """How far a source is ahead of what is applied, against its bound."""

    passed: bool
    metadata: dict[str, Any]


def always() -> bool:
    return True


class MicroBatches(Protocol):
    """A domain's streaming work: `step` applies what is available now and returns how many
    changes it applied (0 when idle), asking `keep_going` between its transactions so a long
    catch-up can stop early (what it committed stays, the rest waits for the next step); `lag`
    says how far behind the source it is."""

    def step(self, keep_going: Callable[[], bool] = always) -> int: ...

    def lag(self) -> LagReport: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class MicroBatchSession:
    conn: psycopg.Connection
    stream: str  # the streaming sensor's name; rows of the outbox are kept per stream
    run_id: str  # written where a run would write its run id (row lineage)
    # None: the worker reads every partition of its topics (one worker per source). A name: the
    # Kafka consumer group the worker shares with the other processes of its source.
    consumer_group: str | None = None

    def transaction(self):
        return in_transaction(self.conn)

    def record(self, cur, asset_key: str, metadata: dict[str, Any]) -> None:
        lineage_outbox.record(cur, self.stream, asset_key,
                              {**metadata, "streaming_session": self.run_id})

    def drain(self, asset_key: str, new_stats: Callable[[], HasMetadata],
              step: Callable[[Any, Any], int], keep_going: Callable[[], bool] = always,
              batch_limit: int | None = None) -> int:
        """Run `step(cur, stats)` in its own transaction until it takes nothing (or `keep_going`
        says stop); each batch that took work records its stats for `asset_key`. Returns the
        work taken. With the step's `batch_limit`, a batch that took less than a full one ends
        the drain too: the queue was empty (what others queue since, they drain), and a steady
        trickle of small batches saves a transaction each. A drain that finds nothing to take at
        once records that the asset is caught up (`lineage_outbox.CAUGHT_UP_KEY`): what its
        upstream applied needed no change of it, and its lineage must not show it behind."""
        total = 0
        while keep_going():
            stats = new_stats()
            with self.transaction() as cur:
                taken = step(cur, stats)
                if not taken:
                    if not total:
                        self.record(cur, asset_key, {lineage_outbox.CAUGHT_UP_KEY: True})
                    return total
                self.record(cur, asset_key, stats.metadata())
            total += taken
            if batch_limit is not None and taken < batch_limit:
                return total
        return total
