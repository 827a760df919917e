"""The lineage outbox: what a streaming sensor applied, kept until Dagster has recorded it.

A streaming sensor applies micro-batches inside its tick (no run). Each micro-batch writes, in
the transaction of its data, one row per asset it changed: the metadata of that change (counts,
offset ranges, document versions). At the end of the tick the sensor reads the rows after its
cursor, folds them into one materialisation per asset (`fold`) and returns them with the new
cursor; rows at or below the cursor are pruned by the next tick. A tick that dies after
committing data but before reporting leaves its rows behind, so the next tick reports them:
every committed change reaches the lineage at least once.

Several writers share a stream's outbox (worker processes of one source, a restarted worker
beside its predecessor), and their transactions commit in any order: a row's id, drawn when it
is inserted, can be below that of a row committed before it. So rows are read in the order of
the transactions that wrote them (`xid`, then id) and only once every older transaction has
ended (below the snapshot's xmin): a row that commits later always comes after the cursor. The
price is that a long transaction anywhere on the server holds the *reporting* back (never the
data) until it ends.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from rag_assets.platform.offset_ranges import coalesce

MAX_LISTED = 100  # longest list kept in a folded materialisation's metadata
RANGES_KEY = "offset_ranges"
# A row that says an asset was checked against what its upstream applied and needed no change
# (its work queue was empty): not a micro-batch, but it keeps the asset current in the lineage.
CAUGHT_UP_KEY = "caught_up"
HELD_BACK_POLL_S = 0.05


def record(cur, stream: str, asset_key: str, metadata: dict[str, Any]) -> None:
    cur.execute("INSERT INTO lineage_outbox (stream, asset_key, metadata) VALUES (%s, %s, %s)",
                (stream, asset_key, Jsonb(metadata)))


@dataclass(frozen=True)
class OutboxRow:
    id: int
    asset_key: str
    metadata: dict[str, Any]
    created_at: datetime
    xid: int = 0  # the transaction that wrote it (PostgreSQL's 64-bit xid8)

    @property
    def position(self) -> OutboxPosition:
        return OutboxPosition(self.xid, self.id)


@dataclass(frozen=True, order=True)
class OutboxPosition:
    """Where a reader stands in a stream's outbox: the last row it took, by (xid, id)."""

    xid: int = 0
    id: int = 0

    def encode(self) -> str:
        return f"{self.xid}:{self.id}"

    @classmethod
    def parse(cls, text: str | int | None) -> OutboxPosition:
        """From `encode`'s text. A bare id (a cursor of the id-ordered outbox before it) starts
        from the beginning: the rows of its last tick are reported once more (at least once)."""
        if not isinstance(text, str) or ":" not in text:
            return cls()
        xid, row_id = text.split(":", 1)
        return cls(int(xid), int(row_id))


def pending(cur, stream: str, after: OutboxPosition = OutboxPosition(), limit: int = 5000,
            wait_s: float = 0.0) -> list[OutboxRow]:
    """Rows after `after` whose transactions, and every older one, have ended; in order. While
    committed rows wait behind an older transaction still open, waits up to `wait_s` for it
    (each statement sees what committed since: the caller's transaction must be read-committed
    and hold no xid)."""
    deadline = time.monotonic() + wait_s
    while True:
        rows = _ready(cur, stream, after, limit)
        if time.monotonic() >= deadline or not _held_back(cur, stream, rows, after):
            return rows
        time.sleep(HELD_BACK_POLL_S)


def _ready(cur, stream: str, after: OutboxPosition, limit: int) -> list[OutboxRow]:
    cur.execute("SELECT id, asset_key, metadata, created_at, xid::text::bigint FROM lineage_outbox"
                " WHERE stream = %s AND (xid, id) > (%s::text::xid8, %s)"
                " AND xid < pg_snapshot_xmin(pg_current_snapshot())"
                " ORDER BY xid, id LIMIT %s", (stream, str(after.xid), after.id, limit))
    return [OutboxRow(*row) for row in cur.fetchall()]


def _held_back(cur, stream: str, rows: list[OutboxRow], after: OutboxPosition) -> bool:
    """Whether committed rows past those read wait for an older transaction to end."""
    last = rows[-1].position if rows else after
    cur.execute("SELECT EXISTS (SELECT FROM lineage_outbox WHERE stream = %s"
                " AND (xid, id) > (%s::text::xid8, %s)"
                " AND xid >= pg_snapshot_xmin(pg_current_snapshot()))",
                (stream, str(last.xid), last.id))
    return cur.fetchone()[0]


def prune(cur, stream: str, upto: OutboxPosition) -> int:
    """Delete rows Dagster has recorded (the sensor's cursor has moved past them)."""
    cur.execute("DELETE FROM lineage_outbox"
                " WHERE stream = %s AND (xid, id) <= (%s::text::xid8, %s)",
                (stream, str(upto.xid), upto.id))
    return cur.rowcount


# Integers that describe a state, not an amount: the latest batch's value is kept.
STATE_SUFFIXES = ("_version", "_total")


def _is_additive(key: str, value: Any) -> bool:
    """Counts and durations add up across micro-batches; versions, means, flags do not."""
    if isinstance(value, bool) or key.endswith(STATE_SUFFIXES):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and "seconds" in key


@dataclass
class FoldedChange:
    """One asset's micro-batches of a tick, as one materialisation's metadata."""

    batches: int = 0
    first_applied: datetime | None = None
    last_applied: datetime | None = None
    counts: dict[str, float] = field(default_factory=dict)
    lists: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    ranges: dict[tuple[str, int], list[tuple[int, int]]] = field(
        default_factory=lambda: defaultdict(list))
    latest: dict[str, Any] = field(default_factory=dict)

    def add(self, row: OutboxRow) -> None:
        self.first_applied = min(filter(None, (self.first_applied, row.created_at)))
        self.last_applied = max(filter(None, (self.last_applied, row.created_at)))
        if row.metadata.get(CAUGHT_UP_KEY):
            self.latest.update(row.metadata)
            return
        self.batches += 1
        for key, value in row.metadata.items():
            if key == RANGES_KEY:
                for r in value:
                    self.ranges[(r["topic"], r["partition"])].append((r["start"], r["end"]))
            elif isinstance(value, list):
                self.lists[key].extend(value)
            elif _is_additive(key, value):
                self.counts[key] = self.counts.get(key, 0) + value
            else:
                self.latest[key] = value  # flags, text, means: the latest batch's value

    def metadata(self) -> dict[str, Any]:
        folded: dict[str, Any] = {**self.latest, **self.counts, "micro_batches": self.batches}
        folded[CAUGHT_UP_KEY] = self.batches == 0 or folded.get(CAUGHT_UP_KEY, False)
        for key, values in self.lists.items():
            folded[key] = values[:MAX_LISTED]
            if len(values) > MAX_LISTED:
                folded[f"{key}_not_listed"] = len(values) - MAX_LISTED
        if self.ranges:
            folded[RANGES_KEY] = [
                {"topic": topic, "partition": partition, "start": start, "end": end}
                for (topic, partition), parts in sorted(self.ranges.items())
                for start, end in coalesce(parts)
            ]
        if self.first_applied is not None:
            folded["first_applied_at"] = self.first_applied.isoformat()
            folded["last_applied_at"] = self.last_applied.isoformat()
        return folded


def fold(rows: list[OutboxRow]) -> dict[str, FoldedChange]:
    """Per asset key, the tick's micro-batches folded together (counts and durations summed,
    lists joined, offset ranges coalesced per partition, other values from the latest batch).
    The keys come in the order of each asset's last row: an asset brought up to date after its
    upstream comes after it, as its materialisation must for Dagster to show it current."""
    folded: dict[str, FoldedChange] = {}
    last_row: dict[str, OutboxPosition] = {}
    for row in sorted(rows, key=lambda r: r.position):
        folded.setdefault(row.asset_key, FoldedChange()).add(row)
        last_row[row.asset_key] = row.position
    return {key: folded[key] for key in sorted(folded, key=last_row.__getitem__)}
