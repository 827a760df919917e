"""The applied-offsets ledger in PostgreSQL.

A run claims a range inside the same transaction that writes its data; the claim returns only
the parts not applied before and records the whole range. If the transaction rolls back, so
does the claim, so a failed, retried or duplicated run applies each event once in effect.
"""

from __future__ import annotations

from rag_assets.platform.offset_ranges import Range, coalesce, high_water_mark, uncovered


def lock_partition(cur, consumer: str, topic: str, partition: int) -> None:
    """Hold the consumer's lock of one partition until the transaction ends: two runs (or a run
    and a replay) of one partition serialise here; other partitions proceed in parallel."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{consumer}/{topic}/{partition}",))


def applied_ranges(cur, consumer: str, topic: str, partition: int) -> list[Range]:
    cur.execute(
        "SELECT start_offset, end_offset FROM applied_offsets"
        " WHERE consumer = %s AND topic = %s AND partition = %s",
        (consumer, topic, partition),
    )
    return [(int(s), int(e)) for s, e in cur.fetchall()]


def claim(cur, consumer: str, topic: str, partition: int, wanted: Range,
          run_id: str | None = None) -> list[Range]:
    """Record `wanted` as applied and return its parts that were not applied before."""
    lock_partition(cur, consumer, topic, partition)
    existing = applied_ranges(cur, consumer, topic, partition)
    new_parts = uncovered(wanted, existing)
    if not new_parts:
        return []
    merged = coalesce(existing + [wanted])
    cur.execute(
        "DELETE FROM applied_offsets WHERE consumer = %s AND topic = %s AND partition = %s",
        (consumer, topic, partition),
    )
    for start, end in merged:
        cur.execute(
            "INSERT INTO applied_offsets (consumer, topic, partition, start_offset, end_offset, run_id)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (consumer, topic, partition, start, end, run_id),
        )
    return new_parts


def next_offsets(cur, consumer: str, topic_floors: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    """Per (topic, partition): the first offset at or after its floor not yet applied."""
    result = {}
    for (topic, partition), floor in topic_floors.items():
        result[(topic, partition)] = high_water_mark(
            applied_ranges(cur, consumer, topic, partition), floor
        )
    return result


def forget(cur, consumer: str) -> None:
    """Drop a consumer's ledger, for a full rebuild from the earliest retained offsets."""
    cur.execute("DELETE FROM applied_offsets WHERE consumer = %s", (consumer,))
