"""Builders for feedback records and events, shared by the feedback unit tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from rag_assets.feedback.events import FeedbackEvent

TOPIC = "app.feedback"


def valid_document(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "conversation_id": "conv-1",
        "turn_id": "t-1",
        "customer_ref": "cust-42",
        "ts": "2024-03-15T10:15:00Z",
        "question": "Can I change my flight to Paris?",
        "answer": "Yes, you can change it in Manage Booking for a fee.",
        "model_id": "model-a",
        "latency_ms": 850,
        "retrieved_ids": ["policy/changes#3", "faq/fees#1"],
        "rating": "up",
        "comment": None,
    }
    document.update(overrides)
    return document


@pytest.fixture
def record_value() -> Callable[..., bytes]:
    """A valid `app.feedback` value as bytes; keyword arguments replace fields."""

    def build(**overrides: Any) -> bytes:
        return json.dumps(valid_document(**overrides)).encode("utf-8")

    return build


def build_event(**overrides: Any) -> FeedbackEvent:
    event = FeedbackEvent(
        conversation_id="conv-1",
        turn_id="t-1",
        customer_ref="cust-42",
        ts=datetime(2024, 3, 15, 10, 15, tzinfo=timezone.utc),
        question="Can I change my flight to Paris?",
        answer="Yes, you can change it in Manage Booking for a fee.",
        model_id="model-a",
        latency_ms=850.0,
        retrieved_ids=("policy/changes#3",),
        rating_up=True,
        rating_score=None,
        comment=None,
        topic=TOPIC,
        partition=0,
        offset=0,
    )
    return replace(event, **overrides)


@pytest.fixture
def make_event() -> Callable[..., FeedbackEvent]:
    """A valid `FeedbackEvent`; keyword arguments replace fields."""
    return build_event


@pytest.fixture
def make_document() -> Callable[..., dict[str, Any]]:
    """A valid `app.feedback` document as a dict, for tests that remove or reshape fields."""
    return valid_document
