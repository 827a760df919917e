"""Incremental KPI maintenance equals the batch oracle.

A random stream — out of order, some events very late, some redelivered — is cut into random
batches that interleave partitions. Each batch is classified against the watermark state left
by the previous ones, its accepted turns are stored, and only the windows it touched are
recomputed from the stored turns of those windows (what production does in PostgreSQL). At the
end the KPI table must equal `compute_kpis` over all accepted turns.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from rag_assets.feedback.events import FeedbackEvent
from rag_assets.feedback.kpis import KpiRow, TurnFact, compute_kpis, kpis_for_windows
from rag_assets.feedback.sentiment import classify_satisfaction
from rag_assets.feedback.windows import (
    Arrival,
    LatenessPolicy,
    WatermarkState,
    Window,
    classify_batch,
)

POLICY = LatenessPolicy(allowed_lateness=timedelta(hours=6))
START = datetime(2024, 3, 15, tzinfo=timezone.utc)
PARTITIONS = 3
COMMENTS = [None, None, "great, thanks", "useless answer", "ok", "   "]


class KeywordScorer:
    def score(self, texts: Sequence[str]) -> list[float]:
        return [0.7 if "great" in t else -0.6 if "useless" in t else 0.0 for t in texts]


def random_stream(rng: random.Random, build_event, turns: int) -> dict[int, list[FeedbackEvent]]:
    """Per partition, events in offset order."""
    arrivals = []
    for number in range(turns):
        conversation = rng.randrange(60)
        event_time = START + timedelta(minutes=rng.uniform(0, 3 * 24 * 60))
        event = build_event(
            conversation_id=f"conv-{conversation}",
            turn_id=str(number),
            ts=event_time,
            model_id=rng.choice(["model-a", "model-b"]),
            latency_ms=float(rng.randint(50, 4000)),
            retrieved_ids=tuple(f"doc-{i}" for i in range(rng.choice([0, 0, 1, 3]))),
            rating_up=None,
            rating_score=None,
            comment=rng.choice(COMMENTS),
            partition=conversation % PARTITIONS,
        )
        event = _with_random_rating(rng, event)
        delay = timedelta(
            minutes=rng.expovariate(1 / 20) if rng.random() < 0.9 else rng.uniform(60, 24 * 60)
        )
        arrivals.append((event_time + delay, event))
        if rng.random() < 0.12:  # at-least-once delivery: the same record again, later
            arrivals.append((event_time + delay + timedelta(minutes=rng.uniform(0, 600)), event))
    arrivals.sort(key=lambda pair: pair[0])
    streams: dict[int, list[FeedbackEvent]] = {p: [] for p in range(PARTITIONS)}
    for _, event in arrivals:
        stream = streams[event.partition]
        stream.append(replace(event, offset=len(stream)))
    return streams


def _with_random_rating(rng: random.Random, event: FeedbackEvent) -> FeedbackEvent:
    kind = rng.choice(["none", "none", "up", "down", "score"])
    if kind == "up":
        return replace(event, rating_up=True)
    if kind == "down":
        return replace(event, rating_up=False)
    if kind == "score":
        score = float(rng.randint(1, 5))
        return replace(
            event,
            rating_score=score,
            rating_up=True if score >= 4 else False if score <= 2 else None,
        )
    return event


def random_batches(
    rng: random.Random, streams: dict[int, list[FeedbackEvent]]
) -> list[list[FeedbackEvent]]:
    """Contiguous offset ranges per partition, interleaved at random; some runs take two ranges."""
    pending = {p: list(events) for p, events in streams.items() if events}
    chunks = []
    while pending:
        partition = rng.choice(sorted(pending))
        size = rng.randint(1, 40)
        chunks.append(pending[partition][:size])
        pending[partition] = pending[partition][size:]
        if not pending[partition]:
            del pending[partition]
    batches = []
    while chunks:
        take = 2 if len(chunks) > 1 and rng.random() < 0.3 else 1
        batches.append([event for chunk in chunks[:take] for event in chunk])
        chunks = chunks[take:]
    return batches


def reference_accepted(
    streams: dict[int, list[FeedbackEvent]],
) -> set[tuple[str, int, int]]:
    """The acceptance rule restated naively: per partition, in offset order."""
    accepted = set()
    seen: set[tuple[str, str]] = set()
    for stream in streams.values():
        frontier = None
        for event in stream:
            if event.turn_key in seen:
                continue
            if frontier is not None and event.ts < frontier - POLICY.allowed_lateness:
                continue
            seen.add(event.turn_key)
            frontier = event.ts if frontier is None else max(frontier, event.ts)
            accepted.add((event.topic, event.partition, event.offset))
    return accepted


def to_facts(events: list[FeedbackEvent]) -> list[TurnFact]:
    satisfaction = classify_satisfaction(events, KeywordScorer())
    return [
        TurnFact.from_event(event, category)
        for event, category in zip(events, satisfaction, strict=True)
    ]


def process_incrementally(
    batches, rng
) -> tuple[list[FeedbackEvent], dict[tuple[Window, str], KpiRow], dict]:
    state = WatermarkState()
    stored: dict[tuple[str, str], TurnFact] = {}
    kpi_table: dict[tuple[Window, str], KpiRow] = {}
    accepted: list[FeedbackEvent] = []
    arrivals = {arrival: 0 for arrival in Arrival}
    for batch in batches:
        outcome = classify_batch(batch, state, POLICY, stored.keys())
        if rng.random() < 0.2:  # the run failed before committing and is retried
            assert classify_batch(list(reversed(batch)), state, POLICY, stored.keys()) == outcome
        for fact in to_facts(outcome.accepted):
            stored[fact.turn_key] = fact
        accepted += outcome.accepted
        state = outcome.state
        for arrival, count in outcome.counts().items():
            arrivals[arrival] += count

        touched = outcome.touched_windows()
        facts_of_touched = [
            f for f in stored.values() if any(w.contains(f.event_time) for w in touched)
        ]
        for key in [key for key in kpi_table if key[0] in touched]:
            del kpi_table[key]
        for row in kpis_for_windows(facts_of_touched, touched):
            kpi_table[(row.window, row.model_id)] = row
    return accepted, kpi_table, arrivals


@pytest.mark.parametrize("seed", range(12))
def test_incremental_kpis_equal_the_oracle_over_accepted_events(seed, make_event):
    rng = random.Random(seed)
    streams = random_stream(rng, make_event, turns=rng.randint(150, 400))

    accepted, kpi_table, arrivals = process_incrementally(random_batches(rng, streams), rng)

    assert (
        arrivals[Arrival.TOO_LATE] > 0
        and arrivals[Arrival.LATE_ACCEPTED] > 0
        and arrivals[Arrival.DUPLICATE] > 0
    )
    assert sum(arrivals.values()) == sum(len(stream) for stream in streams.values())
    assert {(e.topic, e.partition, e.offset) for e in accepted} == reference_accepted(streams)
    oracle = compute_kpis(to_facts(accepted))
    assert sorted(kpi_table.values(), key=lambda r: (r.window, r.model_id)) == oracle


@pytest.mark.parametrize("seed", range(5))
def test_accepted_events_do_not_depend_on_batching(seed, make_event):
    rng = random.Random(1000 + seed)
    streams = random_stream(rng, make_event, turns=300)

    one_batch_per_partition = [stream for stream in streams.values() if stream]
    accepted_whole, table_whole, _ = process_incrementally(one_batch_per_partition, rng)
    accepted_split, table_split, _ = process_incrementally(random_batches(rng, streams), rng)

    assert sorted(e.offset + 10**6 * e.partition for e in accepted_whole) == sorted(
        e.offset + 10**6 * e.partition for e in accepted_split
    )
    assert table_whole == table_split
