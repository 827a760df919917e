"""The document workers' commit lock and version re-check, without a server."""

from rag_assets.knowledge import index_queue, registry
from rag_assets.knowledge.registry import QueuedDocument


class LockCursor:
    """Answers `pg_try_advisory_xact_lock` with the given results in turn."""

    def __init__(self, results: list[bool]) -> None:
        self.results, self.tries = results, 0

    def execute(self, sql: str, params) -> None:
        assert "pg_try_advisory_xact_lock(hashtext(%s))" in sql
        assert params == ("kb-chunks-writer:rag",)
        self.tries += 1

    def fetchone(self):
        return (self.results[self.tries - 1],)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_writer_lock_is_polled_until_it_is_free():
    cursor, clock = LockCursor([False, False, True]), FakeClock()
    assert index_queue.wait_for_writer_lock(cursor, "rag", 1.0, clock, clock.sleep)
    assert cursor.tries == 3


def test_waiting_for_the_writer_lock_gives_up_after_the_timeout():
    cursor, clock = LockCursor([False] * 1000), FakeClock()
    assert not index_queue.wait_for_writer_lock(cursor, "rag", 0.1, clock, clock.sleep)
    assert 0.1 <= clock.now < 0.1 + 2 * index_queue._LOCK_POLL_S


def test_an_item_is_current_only_at_the_status_and_version_it_was_claimed_at():
    item = QueuedDocument("kb/a.md", "pending", "e1", None, None, None, 0)
    assert registry.is_current(item, {"kb/a.md": ("pending", "e1", None)})
    assert not registry.is_current(item, {"kb/a.md": ("pending", "e2", None)})  # newer version
    assert not registry.is_current(item, {"kb/a.md": ("indexed", "e1", None)})  # done by another
    assert not registry.is_current(item, {})  # removed
