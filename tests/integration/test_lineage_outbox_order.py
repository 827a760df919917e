"""The lineage outbox read the way a streaming sensor's ticks read it, while several writers
(worker processes of one source) commit in any order, against a real PostgreSQL: every
committed row is reported exactly once, whatever the interleaving; a rolled-back one never."""

import time
from contextlib import ExitStack

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag_assets.platform import lineage_outbox
from rag_assets.platform.db import ensure_schema
from rag_assets.platform.lineage_outbox import OutboxPosition

pytestmark = pytest.mark.integration

WRITERS = 3


class Ticks:
    """A sensor's ticks: read after the cursor, prune what the last tick reported."""

    def __init__(self, postgres, stream: str) -> None:
        self.postgres, self.stream = postgres, stream
        self.cursor = OutboxPosition()
        self.reported: list[int] = []

    def tick(self) -> list[int]:
        with self.postgres.transaction() as cur:
            rows = lineage_outbox.pending(cur, self.stream, self.cursor)
            lineage_outbox.prune(cur, self.stream, self.cursor)
        if rows:
            self.cursor = rows[-1].position
        self.reported += [row.metadata["n"] for row in rows]
        return [row.metadata["n"] for row in rows]

    def settle(self, count: int, timeout_s: float = 10.0) -> list[int]:
        """Ticks until `count` rows are reported in all (another transaction on the server, such
        as a parallel test's, may hold the reporting back a moment), then once more."""
        deadline = time.monotonic() + timeout_s
        while len(self.reported) < count and time.monotonic() < deadline:
            self.tick()
            time.sleep(0.02)
        self.tick()
        return self.reported


@pytest.fixture
def outbox_schema(postgres):
    with postgres.transaction() as cur:
        ensure_schema(cur, postgres.db_schema)
    return postgres


def writer(postgres, stack: ExitStack):
    """A connection whose transaction stays open until the test commits it."""
    conn = postgres.connector.connect()
    stack.callback(conn.close)
    return conn


def record(conn, stream: str, n: int) -> None:
    lineage_outbox.record(conn.cursor(), stream, "some_asset", {"n": n})


def take_xid(conn) -> None:
    """The transaction gets its xid now (as a micro-batch's first data write does)."""
    conn.execute("SELECT pg_current_xact_id()")


def test_a_row_committed_after_a_later_row_was_read_is_still_reported(outbox_schema):
    ticks = Ticks(outbox_schema, "order_test_1")
    with ExitStack() as stack:
        a, b = writer(outbox_schema, stack), writer(outbox_schema, stack)
        record(a, ticks.stream, 1)  # A draws the lower id and is still applying
        record(b, ticks.stream, 2)
        b.commit()
        assert ticks.tick() == []  # B's row waits for the older transaction A
        a.commit()
    assert ticks.settle(2) == [1, 2]


def test_rows_come_in_the_order_of_their_transactions_not_of_their_ids(outbox_schema):
    ticks = Ticks(outbox_schema, "order_test_2")
    with ExitStack() as stack:
        a, b = writer(outbox_schema, stack), writer(outbox_schema, stack)
        take_xid(a)  # A began writing first ...
        take_xid(b)
        record(b, ticks.stream, 1)  # ... but B drew the lower id and committed first
        b.commit()
        record(a, ticks.stream, 2)
        assert ticks.tick() == []
        a.commit()
    assert ticks.settle(2) == [2, 1]


def test_a_bare_id_cursor_of_the_old_outbox_starts_from_the_beginning():
    assert OutboxPosition.parse(41) == OutboxPosition()
    assert OutboxPosition.parse(None) == OutboxPosition()
    assert OutboxPosition.parse(OutboxPosition(7, 41).encode()) == OutboxPosition(7, 41)


schedules = st.lists(st.one_of(
    st.tuples(st.sampled_from(["record", "xid", "commit", "rollback"]),
              st.integers(min_value=0, max_value=WRITERS - 1)),
    st.just(("tick", None))), min_size=1, max_size=40)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schedule=schedules)
def test_every_committed_row_is_reported_once_whatever_the_interleaving(outbox_schema, schedule):
    ticks = Ticks(outbox_schema, "order_property")
    with outbox_schema.transaction() as cur:
        cur.execute("DELETE FROM lineage_outbox WHERE stream = %s", (ticks.stream,))
    committed, open_rows = [], {w: [] for w in range(WRITERS)}
    with ExitStack() as stack:
        writers = [writer(outbox_schema, stack) for _ in range(WRITERS)]
        for n, (op, w) in enumerate(schedule):
            if op == "record":
                record(writers[w], ticks.stream, n)
                open_rows[w].append(n)
            elif op == "xid":
                take_xid(writers[w])
            elif op == "commit":
                writers[w].commit()
                committed += open_rows[w]
                open_rows[w] = []
            elif op == "rollback":
                writers[w].rollback()
                open_rows[w] = []
            else:
                ticks.tick()
        for w, conn in enumerate(writers):
            conn.commit()
            committed += open_rows[w]
    assert sorted(ticks.settle(len(committed))) == sorted(committed)
