"""Accepted turns in PostgreSQL (`feedback_turns`): the facts the KPI tables are recomputed from.

A turn is stored once, keyed by (conversation_id, turn_id), in the transaction that claims the
offsets it came from. `satisfaction` stays NULL until `feedback_scored` sets it; NULL rows are
the scoring queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from rag_assets.feedback.events import FeedbackEvent
from rag_assets.feedback.kpis import TurnFact
from rag_assets.feedback.sentiment import Satisfaction
from rag_assets.feedback.windows import TurnKey, Window

_FACT_COLUMNS = (
    "conversation_id, turn_id, model_id, event_time, latency_ms, has_context, rating_up,"
    " rating_score, satisfaction"
)


def applied_turn_keys(cur, keys: Iterable[TurnKey]) -> set[TurnKey]:
    """Which of `keys` are stored already."""
    keys = list(set(keys))
    if not keys:
        return set()
    cur.execute(
        "SELECT t.conversation_id, t.turn_id FROM feedback_turns t"
        " JOIN unnest(%s::text[], %s::text[]) AS k(conversation_id, turn_id)"
        " USING (conversation_id, turn_id)",
        ([k[0] for k in keys], [k[1] for k in keys]),
    )
    return {(c, t) for c, t in cur.fetchall()}


def insert_turns(cur, events: Sequence[FeedbackEvent], run_id: str | None) -> int:
    """Store accepted turns (not scored yet); a turn stored before is left as it is."""
    if not events:
        return 0
    cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS feedback_turns_in"
        " (LIKE feedback_turns INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    columns = ("conversation_id", "turn_id", "customer_ref", "model_id", "event_time",
               "latency_ms", "has_context", "rating_up", "rating_score", "comment", "topic",
               "partition", "offset", "run_id")
    quoted = ", ".join(f'"{c}"' for c in columns)
    with cur.copy(f"COPY feedback_turns_in ({quoted}) FROM STDIN") as copy:
        for e in events:
            copy.write_row((e.conversation_id, e.turn_id, e.customer_ref, e.model_id, e.ts,
                            e.latency_ms, bool(e.retrieved_ids), e.rating_up, e.rating_score,
                            e.comment, e.topic, e.partition, e.offset, run_id))
    cur.execute(
        f"INSERT INTO feedback_turns ({quoted}) SELECT {quoted} FROM feedback_turns_in"
        " ON CONFLICT (conversation_id, turn_id) DO NOTHING"
    )
    inserted = cur.rowcount
    cur.execute("TRUNCATE feedback_turns_in")
    return inserted


@dataclass(frozen=True)
class UnscoredTurn:
    conversation_id: str
    turn_id: str
    event_time: datetime
    rating_up: bool | None
    rating_score: float | None
    comment: str | None


def claim_unscored(cur, limit: int) -> list[UnscoredTurn]:
    """Up to `limit` turns not scored yet, locked for this transaction (others skip them)."""
    cur.execute(
        "SELECT conversation_id, turn_id, event_time, rating_up, rating_score, comment"
        " FROM feedback_turns WHERE satisfaction IS NULL"
        " ORDER BY topic, partition, \"offset\" LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    )
    return [UnscoredTurn(*row) for row in cur.fetchall()]


def unscore_all(cur) -> int:
    """Put every turn back in the scoring queue (a full rescoring)."""
    cur.execute("UPDATE feedback_turns SET satisfaction = NULL, sentiment = NULL"
                " WHERE satisfaction IS NOT NULL")
    return cur.rowcount


def save_scores(cur, turns: Sequence[UnscoredTurn], sentiments: Sequence[float | None],
                satisfactions: Sequence[Satisfaction], run_id: str | None) -> None:
    if not turns:
        return
    cur.execute(
        "UPDATE feedback_turns t SET sentiment = s.sentiment, satisfaction = s.satisfaction,"
        " scored_run_id = %s"
        " FROM unnest(%s::text[], %s::text[], %s::float8[], %s::text[])"
        " AS s(conversation_id, turn_id, sentiment, satisfaction)"
        " WHERE t.conversation_id = s.conversation_id AND t.turn_id = s.turn_id",
        (run_id, [t.conversation_id for t in turns], [t.turn_id for t in turns],
         list(sentiments), [str(s) for s in satisfactions]),
    )


def scored_facts_in(cur, windows: Iterable[Window]) -> list[TurnFact]:
    """Scored turns whose event time falls in any of `windows`."""
    spans = merged_spans(windows)
    if not spans:
        return []
    cur.execute(
        f"SELECT {_FACT_COLUMNS} FROM feedback_turns t"
        " JOIN unnest(%s::timestamptz[], %s::timestamptz[]) AS w(lo, hi)"
        " ON t.event_time >= w.lo AND t.event_time < w.hi"
        " WHERE t.satisfaction IS NOT NULL",
        ([lo for lo, _ in spans], [hi for _, hi in spans]),
    )
    return [_fact(row) for row in cur.fetchall()]


def all_scored_facts(cur) -> list[TurnFact]:
    cur.execute(f"SELECT {_FACT_COLUMNS} FROM feedback_turns WHERE satisfaction IS NOT NULL")
    return [_fact(row) for row in cur.fetchall()]


def counts(cur) -> dict[str, int]:
    cur.execute("SELECT count(*), count(*) FILTER (WHERE satisfaction IS NULL) FROM feedback_turns")
    total, unscored = cur.fetchone()
    return {"turns_stored": int(total), "turns_unscored": int(unscored)}


def clear(cur) -> None:
    cur.execute("DELETE FROM feedback_turns")


def merged_spans(windows: Iterable[Window]) -> list[tuple[datetime, datetime]]:
    spans: list[tuple[datetime, datetime]] = []
    for window in sorted(windows, key=lambda w: (w.start, w.end)):
        if spans and window.start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], window.end))
        else:
            spans.append((window.start, window.end))
    return spans


def _fact(row) -> TurnFact:
    (conversation_id, turn_id, model_id, event_time, latency_ms, has_context, rating_up,
     rating_score, satisfaction) = row
    return TurnFact(
        conversation_id=conversation_id, turn_id=turn_id, model_id=model_id,
        event_time=event_time, latency_ms=float(latency_ms), has_context=bool(has_context),
        rating_up=rating_up, rating_score=None if rating_score is None else float(rating_score),
        satisfaction=Satisfaction(satisfaction),
    )
