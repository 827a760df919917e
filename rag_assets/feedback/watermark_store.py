"""The persisted watermark state (`feedback_frontiers`): one frontier per topic-partition.

Loaded and saved inside the transaction that claims a partition's offsets, after the ledger's
per-partition lock, so concurrent runs on one partition see each other's frontier in order.
"""

from __future__ import annotations

from rag_assets.feedback.windows import PartitionKey, WatermarkState


def load(cur, partitions: list[PartitionKey]) -> WatermarkState:
    if not partitions:
        return WatermarkState()
    cur.execute(
        "SELECT f.topic, f.partition, f.frontier FROM feedback_frontiers f"
        " JOIN unnest(%s::text[], %s::int[]) AS p(topic, partition) USING (topic, partition)",
        ([t for t, _ in partitions], [p for _, p in partitions]),
    )
    return WatermarkState({(topic, int(partition)): frontier
                           for topic, partition, frontier in cur.fetchall()})


def save(cur, before: WatermarkState, after: WatermarkState) -> int:
    """Write the frontiers that moved; returns how many did."""
    moved = [(key, value) for key, value in after.frontiers.items()
             if before.frontier(key) != value]
    for (topic, partition), frontier in moved:
        cur.execute(
            "INSERT INTO feedback_frontiers (topic, partition, frontier) VALUES (%s, %s, %s)"
            " ON CONFLICT (topic, partition) DO UPDATE SET frontier = EXCLUDED.frontier",
            (topic, partition, frontier),
        )
    return len(moved)


def all_frontiers(cur) -> dict[PartitionKey, object]:
    cur.execute("SELECT topic, partition, frontier FROM feedback_frontiers")
    return {(t, int(p)): f for t, p, f in cur.fetchall()}


def clear(cur) -> None:
    cur.execute("DELETE FROM feedback_frontiers")
