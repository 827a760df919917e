"""`MicroBatchSession.drain` against a real PostgreSQL: one transaction and one lineage row per
batch that took work, and a batch short of the step's limit ends the drain."""

import pytest

from rag_assets.platform import lineage_outbox
from rag_assets.platform.db import ensure_schema
from rag_assets.platform.micro_batch import MicroBatchSession

pytestmark = pytest.mark.integration


class Counted:
    def __init__(self) -> None:
        self.taken = 0

    def metadata(self) -> dict:
        return {"taken": self.taken}


def drain_queue(postgres, queue: list[int], **options) -> tuple[int, list[int], list[int]]:
    """Drains `queue` (the sizes successive batches take); returns the total, the sizes the step
    was called for and the lineage rows recorded."""
    called = []

    def step(cur, stats: Counted) -> int:
        cur.execute("SELECT 1")  # inside the drain's transaction
        stats.taken = queue.pop(0) if queue else 0
        called.append(stats.taken)
        return stats.taken

    with postgres.transaction() as cur:
        ensure_schema(cur, postgres.db_schema)
    with postgres.connection() as conn:
        session = MicroBatchSession(conn, "drain_test", "drain-session")
        total = session.drain("some_asset", Counted, step, **options)
        with session.transaction() as cur:
            rows = lineage_outbox.pending(cur, "drain_test")
    return total, called, [row.metadata["taken"] for row in rows]


def test_without_a_limit_the_drain_asks_until_a_batch_takes_nothing(postgres):
    assert drain_queue(postgres, [5, 5, 3]) == (13, [5, 5, 3, 0], [5, 5, 3])


def test_a_batch_short_of_the_limit_ends_the_drain(postgres):
    assert drain_queue(postgres, [5, 5, 3, 2], batch_limit=5) == (13, [5, 5, 3], [5, 5, 3])


def test_a_drain_asked_to_stop_takes_nothing_more(postgres):
    asked = []

    def keep_going() -> bool:
        asked.append(True)
        return len(asked) < 2

    assert drain_queue(postgres, [5, 5, 5], keep_going=keep_going) == (5, [5], [5])
