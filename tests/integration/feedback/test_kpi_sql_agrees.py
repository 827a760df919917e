"""The KPI rows aggregated in PostgreSQL (`kpi_store.kpi_rows_sql`) equal the Python oracle
(`kpis.compute_kpis`) bit for bit, with awkward floats: random fractional latencies (so the
percentile interpolation rounds) and fractional 1–5 scores (so a naive sum would differ)."""

import random
from datetime import datetime, timedelta, timezone

import pytest

from rag_assets.feedback.assets import ensure_feedback_schema
from rag_assets.feedback.kpi_store import kpi_rows_sql
from rag_assets.feedback.kpis import TurnFact, compute_kpis
from rag_assets.feedback.sentiment import Satisfaction
from rag_assets.feedback.windows import Granularity, Window, window_of

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)


def random_facts(rng: random.Random, count: int) -> list[TurnFact]:
    facts = []
    for number in range(count):
        kind = rng.choice(["none", "up", "down", "score"])
        score = rng.choice([1.0, 2.0, 3.0, 4.0, 5.0, rng.uniform(1, 5)]) if kind == "score" else None
        facts.append(TurnFact(
            conversation_id=f"c{rng.randrange(count // 3 + 1)}", turn_id=str(number),
            model_id=rng.choice(["m-a", "m-b"]),
            event_time=T0 + timedelta(seconds=rng.uniform(0, 2.5 * 86400)),
            latency_ms=rng.choice([rng.uniform(0, 5000), float(rng.randint(50, 4000)), 0.1 * rng.randint(1, 99999)]),
            has_context=rng.random() < 0.6,
            rating_up={"up": True, "down": False, "none": None}.get(
                kind, None if score is None else (True if score >= 4 else False if score <= 2 else None)),
            rating_score=score, satisfaction=rng.choice(list(Satisfaction)),
        ))
    return facts


def test_sql_kpi_rows_equal_the_python_oracle(postgres):
    facts = random_facts(random.Random(23), 3000)
    with postgres.transaction() as cur:
        ensure_feedback_schema(cur, postgres)
        with cur.copy("COPY feedback_turns (conversation_id, turn_id, model_id, event_time,"
                      " latency_ms, has_context, rating_up, rating_score, satisfaction, topic,"
                      " partition, \"offset\") FROM STDIN") as copy:
            for i, f in enumerate(facts):
                copy.write_row((f.conversation_id, f.turn_id, f.model_id, f.event_time,
                                f.latency_ms, f.has_context, f.rating_up, f.rating_score,
                                str(f.satisfaction), "app.feedback", 0, i))
        for granularity in (Granularity.HOUR, Granularity.DAY):
            expected = compute_kpis(facts, [granularity])
            assert kpi_rows_sql(cur, granularity, None) == expected
            some = {window_of(f.event_time, granularity) for f in facts[:40]}
            some.add(Window(granularity, T0 + timedelta(days=30)))  # a window without turns
            assert kpi_rows_sql(cur, granularity, some) == [r for r in expected if r.window in some]


def test_sql_satisfaction_without_comment_equals_satisfaction_of(postgres):
    from rag_assets.feedback.sentiment import satisfaction_of
    from rag_assets.feedback.turn_store import SATISFACTION_WITHOUT_COMMENT_SQL

    cases = [(up, score) for up in (True, False, None) for score in (None, 1.0, 2.0, 3.0, 3.5, 4.0, 5.0)]
    with postgres.transaction() as cur:
        for up, score in cases:
            cur.execute(f"SELECT {SATISFACTION_WITHOUT_COMMENT_SQL} FROM (SELECT %s::boolean AS"
                        " rating_up, %s::float8 AS rating_score) AS r", (up, score))
            assert cur.fetchone()[0] == str(satisfaction_of(up, score, None)), (up, score)
