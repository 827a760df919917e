"""Work queued for a key while a drainer holds that key's queue row is not lost
(`rag_assets.platform.work_queue`)."""

import threading

import pytest

from rag_assets.customers.assets import ensure_customer_schema
from rag_assets.platform.work_queue import QUEUE_CUSTOMER_AGAIN
from rag_assets.platform.pg_connection import in_transaction

pytestmark = pytest.mark.integration


def _queue_while_claimed(postgres, conflict_clause: str) -> tuple[bool, list]:
    """A drainer claims `cus_x`; meanwhile `cus_x` is queued again; the drainer then finishes
    (deletes its claimed rows). Returns whether the queuer had to wait, and what is queued."""
    with postgres.transaction() as cur:
        ensure_customer_schema(cur, postgres)
        cur.execute("INSERT INTO profile_pending VALUES ('cus_x')")
    queued = threading.Event()

    def queue() -> None:
        with postgres.transaction() as cur:
            cur.execute("INSERT INTO profile_pending (customer_id) VALUES ('cus_x')" + conflict_clause)
        queued.set()

    with postgres.connection() as drainer, in_transaction(drainer) as cur:
        cur.execute("SELECT customer_id FROM profile_pending FOR UPDATE SKIP LOCKED")
        assert cur.fetchall() == [("cus_x",)]
        queuer = threading.Thread(target=queue)
        queuer.start()
        waited = not queued.wait(timeout=1.0)
        cur.execute("DELETE FROM profile_pending WHERE customer_id = 'cus_x'")
    queuer.join(timeout=10)
    assert queued.is_set()
    with postgres.transaction() as cur:
        cur.execute("SELECT customer_id FROM profile_pending")
        return waited, cur.fetchall()


def test_a_key_queued_while_claimed_is_queued_again_after_the_drainer(postgres):
    waited, pending = _queue_while_claimed(postgres, QUEUE_CUSTOMER_AGAIN)
    assert waited  # for the drainer's transaction to end
    assert pending == [("cus_x",)]


def test_do_nothing_would_lose_it(postgres):
    """The premise: with ON CONFLICT DO NOTHING the queuer does not wait, and the drainer's
    delete removes the new work with the old."""
    waited, pending = _queue_while_claimed(postgres, " ON CONFLICT DO NOTHING")
    assert not waited
    assert pending == []
