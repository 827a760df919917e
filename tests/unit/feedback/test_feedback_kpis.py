from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest

from rag_assets.feedback.kpis import (
    TurnFact,
    compute_kpis,
    kpis_for_windows,
    percentile_cont,
)
from rag_assets.feedback.sentiment import Satisfaction
from rag_assets.feedback.windows import Granularity, Window

UTC = timezone.utc


def fact(turn: str, **overrides) -> TurnFact:
    base = TurnFact(
        conversation_id="c1",
        turn_id=turn,
        model_id="model-a",
        event_time=datetime(2024, 3, 15, 10, 5, tzinfo=UTC),
        latency_ms=100.0,
        has_context=True,
        rating_up=None,
        rating_score=None,
        satisfaction=Satisfaction.UNKNOWN,
    )
    return replace(base, **overrides)


def only_row(rows, granularity=Granularity.HOUR, model_id="model-a"):
    matching = [row for row in rows if row.granularity is granularity and row.model_id == model_id]
    assert len(matching) == 1
    return matching[0]


def test_percentile_cont_matches_postgresql_definition():
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile_cont(values, 0.5) == 25.0  # position 1.5
    assert percentile_cont(values, 0.95) == pytest.approx(38.5)  # position 2.85
    assert percentile_cont([7.0], 0.95) == 7.0
    assert percentile_cont([3.0, 1.0, 2.0], 0.0) == 1.0
    assert percentile_cont([3.0, 1.0, 2.0], 1.0) == 3.0


def test_percentile_cont_agrees_with_numpy_linear():
    rng = random.Random(7)
    for _ in range(200):
        values = [rng.uniform(0, 5000) for _ in range(rng.randint(1, 60))]
        for fraction in (0.5, 0.95, 0.99):
            assert percentile_cont(values, fraction) == pytest.approx(
                np.percentile(values, fraction * 100)
            )


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        percentile_cont([], 0.5)


def test_kpis_of_one_model_in_one_hour():
    facts = [
        fact("1", rating_up=True, satisfaction=Satisfaction.SATISFIED, latency_ms=100.0),
        fact(
            "2",
            rating_up=False,
            satisfaction=Satisfaction.DISSATISFIED,
            latency_ms=200.0,
        ),
        fact(
            "3",
            rating_up=True,
            rating_score=5.0,
            satisfaction=Satisfaction.SATISFIED,
            latency_ms=300.0,
        ),
        fact(
            "4",
            rating_score=3.0,
            satisfaction=Satisfaction.NEUTRAL,
            latency_ms=400.0,
            has_context=False,
        ),
        fact("5", conversation_id="c2", latency_ms=1000.0, has_context=False),
    ]

    row = only_row(compute_kpis(facts))

    assert (row.window_start, row.window_end) == (
        datetime(2024, 3, 15, 10, tzinfo=UTC),
        datetime(2024, 3, 15, 11, tzinfo=UTC),
    )
    assert (row.turns, row.conversations) == (5, 2)
    assert (row.rated_turns, row.rated_share) == (4, 0.8)
    assert (row.polar_ratings, row.positive_ratings) == (3, 2)
    assert row.thumbs_up_rate == pytest.approx(2 / 3)
    assert (row.scored_turns, row.mean_rating) == (2, 4.0)
    assert row.latency_p50_ms == 300.0
    assert row.latency_p95_ms == pytest.approx(400.0 + 0.8 * 600.0)
    assert (row.satisfied, row.neutral, row.dissatisfied, row.unknown) == (2, 1, 1, 1)
    assert (row.turns_with_context, row.with_context_share) == (3, 0.6)


def test_rates_are_none_without_ratings():
    row = only_row(compute_kpis([fact("1")]))
    assert row.thumbs_up_rate is None and row.mean_rating is None and row.rated_share == 0.0


def test_rows_are_split_by_window_and_model():
    facts = [
        fact(
            "1",
            model_id="model-a",
            event_time=datetime(2024, 3, 15, 10, 59, tzinfo=UTC),
        ),
        fact("2", model_id="model-a", event_time=datetime(2024, 3, 15, 11, 0, tzinfo=UTC)),
        fact(
            "3",
            model_id="model-b",
            event_time=datetime(2024, 3, 15, 11, 30, tzinfo=UTC),
        ),
        fact("4", model_id="model-b", event_time=datetime(2024, 3, 16, 0, 0, tzinfo=UTC)),
    ]

    rows = compute_kpis(facts)

    assert sorted(
        (row.granularity, row.window_start.isoformat(), row.model_id, row.turns) for row in rows
    ) == [
        ("day", "2024-03-15T00:00:00+00:00", "model-a", 2),
        ("day", "2024-03-15T00:00:00+00:00", "model-b", 1),
        ("day", "2024-03-16T00:00:00+00:00", "model-b", 1),
        ("hour", "2024-03-15T10:00:00+00:00", "model-a", 1),
        ("hour", "2024-03-15T11:00:00+00:00", "model-a", 1),
        ("hour", "2024-03-15T11:00:00+00:00", "model-b", 1),
        ("hour", "2024-03-16T00:00:00+00:00", "model-b", 1),
    ]


def test_conversation_spanning_windows_counts_in_each():
    facts = [
        fact("1", event_time=datetime(2024, 3, 15, 10, 59, tzinfo=UTC)),
        fact("2", event_time=datetime(2024, 3, 15, 11, 1, tzinfo=UTC)),
    ]
    hourly = [row for row in compute_kpis(facts) if row.granularity is Granularity.HOUR]
    assert [row.conversations for row in hourly] == [1, 1]
    assert only_row(compute_kpis(facts), Granularity.DAY).conversations == 1


def test_duplicated_turns_are_refused():
    with pytest.raises(ValueError, match="duplicated"):
        compute_kpis([fact("1"), fact("1", latency_ms=5.0)])


def test_result_does_not_depend_on_fact_order():
    rng = random.Random(3)
    facts = [
        fact(
            str(i),
            latency_ms=rng.uniform(1, 3000),
            rating_score=float(rng.randint(1, 5)),
        )
        for i in range(500)
    ]
    shuffled = facts[:]
    rng.shuffle(shuffled)
    assert compute_kpis(facts) == compute_kpis(shuffled)


def test_kpis_for_windows_keeps_only_the_requested_windows():
    facts = [
        fact("1", event_time=datetime(2024, 3, 15, 10, 5, tzinfo=UTC)),
        fact("2", event_time=datetime(2024, 3, 15, 12, 5, tzinfo=UTC)),
    ]
    wanted = Window(Granularity.HOUR, datetime(2024, 3, 15, 12, tzinfo=UTC))

    rows = kpis_for_windows(facts, [wanted])

    assert [(row.window, row.turns) for row in rows] == [(wanted, 1)]


def test_as_record_is_plain_data():
    record = compute_kpis([fact("1")])[0].as_record()
    assert record["granularity"] == "day" and type(record["granularity"]) is str
    assert record["turns"] == 1
