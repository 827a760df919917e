"""`turn_store.insert_turns`: the direct COPY path and its fallback when a key exists."""

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from rag_assets.feedback import turn_store
from rag_assets.feedback.assets import ensure_feedback_schema
from rag_assets.feedback.events import FeedbackEvent

pytestmark = pytest.mark.integration


def event(turn_id: str, offset: int, **overrides) -> FeedbackEvent:
    base = FeedbackEvent(
        conversation_id="c1", turn_id=turn_id, customer_ref=None,
        ts=datetime(2025, 1, 14, 10, tzinfo=timezone.utc), question="q", answer="a",
        model_id="m", latency_ms=10.0, retrieved_ids=(), rating_up=None, rating_score=None,
        comment=None, topic="app.feedback", partition=0, offset=offset)
    return replace(base, **overrides)


def test_insert_turns_copies_new_turns_and_skips_stored_ones(postgres):
    with postgres.transaction() as cur:
        ensure_feedback_schema(cur, postgres)
        assert turn_store.insert_turns(cur, [event("1", 0), event("2", 1)], "r1") == 2
        # "2" is stored already: the direct copy fails inside its savepoint, the fallback
        # stores only "3", and the transaction stays usable.
        assert turn_store.insert_turns(cur, [event("2", 5, latency_ms=99.0), event("3", 6)], "r2") == 1
        # A batch repeating a key of its own takes the fallback too.
        assert turn_store.insert_turns(cur, [event("4", 7), event("4", 8)], "r3") == 1
        cur.execute("SELECT turn_id, latency_ms, run_id FROM feedback_turns ORDER BY turn_id")
        assert cur.fetchall() == [("1", 10.0, "r1"), ("2", 10.0, "r1"), ("3", 10.0, "r2"),
                                  ("4", 10.0, "r3")]
