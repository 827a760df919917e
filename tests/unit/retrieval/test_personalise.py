"""Profile-aware ranking: which phrases a profile gives, and how they reorder candidates."""

from dataclasses import replace

import pytest
from datetime import UTC, datetime

from rag_assets.knowledge.search import SearchHit
from rag_assets.retrieval.personalise import PREFERENCE_WEIGHT, prefer, profile_preferences

PROFILE = {
    "golden": {"loyalty": {"tier": "Gold", "points": 20_000}},
    "upcoming_bookings": [{"destination": "NRT"}, {"destination": "XXX"}, {"destination": "nrt"}],
    "open_tickets": [{"subject": "Travelling with a dog", "status": "open"}],
}


def _hit(chunk_id: str, heading: str, text: str, score: float) -> SearchHit:
    return SearchHit(chunk_id, chunk_id.split("#")[0], "v1", 0, heading, text, score, "run",
                     datetime(2025, 1, 1, tzinfo=UTC), "model")


def test_a_profile_gives_its_tier_trip_countries_and_ticket_subjects_once():
    assert profile_preferences(PROFILE) == ["Gold", "Japan", "Travelling with a dog"]
    assert profile_preferences(None) == [] and profile_preferences({}) == []


def test_the_passage_that_applies_to_the_customer_moves_up_among_similar_ones():
    hits = [_hit("silver.md#1", "Silver tier benefits > Benefits", "Silver members enjoy ...", 0.80),
            _hit("gold.md#1", "Gold tier benefits > Benefits", "Gold members enjoy ...", 0.78),
            _hit("blue.md#1", "Blue tier benefits > Benefits", "Blue members enjoy ...", 0.77)]
    ranked = prefer(hits, ["Gold"], k=3)
    assert [hit.chunk_id for hit in ranked] == ["gold.md#1", "silver.md#1", "blue.md#1"]
    assert ranked[0].score == pytest.approx(0.78 / 0.80 + PREFERENCE_WEIGHT)


def test_without_preferences_the_order_is_kept_and_a_clear_answer_stays_first():
    hits = [_hit("refunds.md#0", "Refunds", "Card refunds take 7 days.", 0.9),
            _hit("gold.md#1", "Gold tier benefits", "Gold members enjoy lounges.", 0.4)]
    assert prefer(hits, [], k=1) == hits[:1]
    assert prefer(hits, ["Gold"], k=2)[0].chunk_id == "refunds.md#0"
    assert prefer([replace(hits[0], score=0.0)], ["Gold"], k=1)[0].chunk_id == "refunds.md#0"
