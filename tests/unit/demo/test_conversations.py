from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from rag_assets.demo.conversations import FeedbackGenerator
from rag_assets.feedback.events import FeedbackEvent, parse_feedback_record

NOW = datetime(2025, 1, 15, 12, tzinfo=timezone.utc)
FIELDS = ["conversation_id", "turn_id", "customer_ref", "ts", "question", "answer", "model_id",
          "latency_ms", "retrieved_ids", "rating", "comment"]


@pytest.fixture(scope="module")
def history(people, sources, documents):
    return FeedbackGenerator(sources, people, documents, seed=7).history(150, NOW)


def _ts(event):
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))


def test_deterministic(people, sources, documents, history):
    assert FeedbackGenerator(sources, people, documents, seed=7).history(150, NOW) == history


def test_another_session_sends_other_conversations(people, sources, documents, history):
    """A demo started again publishes new turns, not the ids of the last one (duplicates)."""
    again = FeedbackGenerator(sources, people, documents, seed=7, session=1).history(150, NOW)
    turn_keys = {(e["conversation_id"], e["turn_id"]) for e in history}
    assert not turn_keys & {(e["conversation_id"], e["turn_id"]) for e in again}


def test_events_have_the_contract_fields_and_parse(history):
    for offset, event in enumerate(history):
        assert list(event) == FIELDS
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["ts"])
        assert event["rating"] in ("up", "down", 1, 2, 3, 4, 5, None)
        assert all(isinstance(i, str) for i in event["retrieved_ids"])
        parsed = parse_feedback_record("app.feedback", 0, offset, json.dumps(event).encode())
        assert isinstance(parsed, FeedbackEvent), parsed
    assert all(NOW - timedelta(hours=24) <= _ts(e) <= NOW for e in history)


def test_multi_turn_conversations_and_refs(history):
    turns = Counter(e["conversation_id"] for e in history)
    assert len(turns) == 150 and max(turns.values()) >= 3
    refs = [e["customer_ref"] for e in history]
    assert any(r is None for r in refs)
    assert any(r and "@" in r for r in refs)
    assert any(r and r.lower().replace(" ", "").startswith("skl") for r in refs)
    assert any(r and r.startswith("crm:") for r in refs)


def test_ratings_comments_and_pii(history):
    ratings = Counter(type(e["rating"]).__name__ if e["rating"] not in ("up", "down") else e["rating"]
                      for e in history)
    assert ratings["up"] and ratings["down"] and ratings["int"] and ratings["NoneType"]
    comments = [e["comment"] for e in history if e["comment"]]
    assert comments
    assert any("@" in c for c in comments) or any(re.search(r"\+\d{7,}", c) for c in comments)
    assert any(e["retrieved_ids"] == [] for e in history)


def test_late_and_out_of_order(history):
    times = [_ts(e) for e in history]
    inversions = sum(b < a for a, b in zip(times, times[1:]))
    assert inversions >= 5
    late = sum(t < max(times[:i]) - timedelta(minutes=30) for i, t in enumerate(times) if i)
    assert late >= 1


def test_retrieved_ids_name_existing_documents(history, documents):
    keys = {d.key: len(d.sections) for d in documents}
    for event in history:
        for rid in event["retrieved_ids"]:
            key, section = rid.rsplit("#", 1)
            assert key in keys and 0 <= int(section) < keys[key]


def test_live_stream_mixes_follow_ups_and_late_events(people, sources, documents):
    generator = FeedbackGenerator(sources, people, documents, seed=3, late_fraction=0.1)
    events = [generator.next_event(NOW + timedelta(seconds=i)) for i in range(300)]
    assert any(e["turn_id"] > 1 for e in events)
    assert any(_ts(e) < NOW for e in events)  # stamped before the stream started: late
