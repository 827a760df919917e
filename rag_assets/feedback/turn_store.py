"""Accepted turns in PostgreSQL (`feedback_turns`): the facts the KPI tables are recomputed from.

A turn is stored once, keyed by (conversation_id, turn_id), in the transaction that claims the
offsets it came from. `satisfaction` stays NULL until `feedback_scored` sets it; NULL rows are
the scoring queue. A turn whose comment could not be scored (a remote scorer gave up) stays in the
queue with `score_attempts`, `score_error` and `score_retry_at`, and is not claimed again before
`score_retry_at` (backoff `rag_assets.platform.retry.retry_delay`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from rag_assets.feedback.events import FeedbackEvent
from rag_assets.feedback.sentiment import Satisfaction
from rag_assets.feedback.windows import TurnKey, Window
from rag_assets.platform.retry import retry_delay

def applied_turn_keys(cur, keys: Iterable[TurnKey]) -> set[TurnKey]:
    """Which of `keys` are stored already."""
    keys = list(set(keys))
    if not keys:
        return set()
    # One primary-key probe per key (LATERAL ... LIMIT 1 keeps the planner from hashing the
    # whole table: a plain join did a sequential scan of every stored turn for each range).
    cur.execute(
        "SELECT k.conversation_id, k.turn_id"
        " FROM unnest(%s::text[], %s::text[]) AS k(conversation_id, turn_id)"
        " CROSS JOIN LATERAL (SELECT 1 FROM feedback_turns t"
        "  WHERE t.conversation_id = k.conversation_id AND t.turn_id = k.turn_id LIMIT 1) AS hit",
        ([k[0] for k in keys], [k[1] for k in keys]),
    )
    return {(c, t) for c, t in cur.fetchall()}


_TURN_COLUMNS = ", ".join(f'"{c}"' for c in (
    "conversation_id", "turn_id", "customer_ref", "model_id", "event_time", "latency_ms",
    "has_context", "rating_up", "rating_score", "comment", "topic", "partition", "offset",
    "run_id"))


def insert_turns(cur, events: Sequence[FeedbackEvent], run_id: str | None) -> int:
    """Store accepted turns (not scored yet); a turn stored before is left as it is.

    The accepted turns of a batch are new by construction (`classify_batch` dropped the
    stored and repeated keys), so they are copied straight into the table inside a savepoint.
    Only if a key exists after all (a concurrent run stored the same turn) does that copy fail;
    then the batch goes through a staging table and `ON CONFLICT DO NOTHING`.
    """
    if not events:
        return 0
    rows = [(e.conversation_id, e.turn_id, e.customer_ref, e.model_id, e.ts, e.latency_ms,
             bool(e.retrieved_ids), e.rating_up, e.rating_score, e.comment, e.topic,
             e.partition, e.offset, run_id) for e in events]
    keys = {(row[0], row[1]) for row in rows}
    if len(keys) == len(rows):
        try:
            with cur.connection.transaction():  # a savepoint
                _copy_turns(cur, "feedback_turns", rows)
            return len(rows)
        except psycopg.errors.UniqueViolation:
            pass
    return _insert_missing(cur, rows)


def _copy_turns(cur, table: str, rows: list[tuple]) -> None:
    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table),
                                                           sql.SQL(_TURN_COLUMNS))) as copy:
        for row in rows:
            copy.write_row(row)


def _insert_missing(cur, rows: list[tuple]) -> int:
    cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS feedback_turns_in"
        " (LIKE feedback_turns INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    quoted = _TURN_COLUMNS
    _copy_turns(cur, "feedback_turns_in", rows)
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
    score_attempts: int = 0


def claim_unscored(cur, limit: int, *, with_comment_only: bool = False) -> list[UnscoredTurn]:
    """Up to `limit` turns not scored yet, locked for this transaction (others skip them).

    `with_comment_only`: only turns whose comment is not NULL (the ones a scorer may have to
    read; `score_without_comment` settles the others in the database). Turns whose scoring
    failed are left out until their `score_retry_at`.
    """
    cur.execute(sql.SQL(
        "SELECT conversation_id, turn_id, event_time, rating_up, rating_score, comment,"
        " score_attempts FROM feedback_turns WHERE satisfaction IS NULL"
        " AND (score_retry_at IS NULL OR score_retry_at <= now()) {}"
        " ORDER BY topic, partition, \"offset\" LIMIT %s FOR UPDATE SKIP LOCKED"
    ).format(sql.SQL("AND comment IS NOT NULL" if with_comment_only else "")), (limit,))
    return [UnscoredTurn(*row) for row in cur.fetchall()]


# `sentiment.satisfaction_of(rating_up, rating_score, None)` in SQL: a turn without a comment has
# no sentiment, so its rating alone decides (a test compares the two on every combination).
SATISFACTION_WITHOUT_COMMENT_SQL = (
    "CASE WHEN rating_up THEN 'satisfied' WHEN NOT rating_up THEN 'dissatisfied'"
    " WHEN rating_score IS NOT NULL THEN 'neutral' ELSE 'unknown' END"
)


def score_without_comment(cur, limit: int, run_id: str | None
                          ) -> tuple[dict[str, int], list[tuple[str, datetime]]]:
    """Score up to `limit` queued turns whose comment is NULL, entirely in PostgreSQL.

    Returns the count per satisfaction and the distinct (granularity, window_start) of the
    scored turns (to queue for the KPI tables). Rows are claimed `FOR UPDATE SKIP LOCKED` in
    offset order, like `claim_unscored`.
    """
    cur.execute(sql.SQL(
        "WITH picked AS (SELECT conversation_id, turn_id FROM feedback_turns"
        "  WHERE satisfaction IS NULL AND comment IS NULL"
        "  ORDER BY topic, partition, \"offset\" LIMIT %s FOR UPDATE SKIP LOCKED),"
        " scored AS (UPDATE feedback_turns t SET sentiment = NULL, scored_run_id = %s,"
        "  satisfaction = {}"
        "  FROM picked WHERE t.conversation_id = picked.conversation_id"
        "  AND t.turn_id = picked.turn_id RETURNING t.event_time, t.satisfaction)"
        " SELECT satisfaction, count(*), NULL::text, NULL::timestamptz FROM scored"
        "  GROUP BY satisfaction"
        " UNION ALL SELECT DISTINCT NULL::text, NULL::bigint, v.g, v.w FROM scored, LATERAL"
        "  (VALUES ('hour', date_trunc('hour', event_time, 'UTC')),"
        "  ('day', date_trunc('day', event_time, 'UTC'))) AS v(g, w)"
    ).format(sql.SQL(SATISFACTION_WITHOUT_COMMENT_SQL)), (limit, run_id))
    counts: dict[str, int] = {}
    windows: list[tuple[str, datetime]] = []
    for satisfaction, count, granularity, window_start in cur.fetchall():
        if granularity is None:
            counts[satisfaction] = int(count)
        else:
            windows.append((granularity, window_start))
    return counts, windows


def unscore_all(cur) -> int:
    """Put every turn back in the scoring queue (a full rescoring); failed ones are due now."""
    cur.execute("UPDATE feedback_turns SET satisfaction = NULL, sentiment = NULL,"
                " score_attempts = 0, score_error = NULL, score_retry_at = NULL"
                " WHERE satisfaction IS NOT NULL OR score_retry_at IS NOT NULL")
    return cur.rowcount


def postpone_scoring(cur, turns: Sequence[UnscoredTurn], errors: Sequence[str],
                     run_id: str | None) -> None:
    """The scoring of `turns` failed (`errors`, one each): they stay queued, each retried after
    `retry_delay` of its consecutive failures."""
    if not turns:
        return
    cur.execute(
        "UPDATE feedback_turns t SET score_attempts = t.score_attempts + 1,"
        " score_error = s.error, score_retry_at = now() + s.delay, scored_run_id = %s"
        " FROM unnest(%s::text[], %s::text[], %s::text[], %s::interval[])"
        " AS s(conversation_id, turn_id, error, delay)"
        " WHERE t.conversation_id = s.conversation_id AND t.turn_id = s.turn_id",
        (run_id, [t.conversation_id for t in turns], [t.turn_id for t in turns], list(errors),
         [retry_delay(t.score_attempts + 1) for t in turns]),
    )


def save_scores(cur, turns: Sequence[UnscoredTurn], sentiments: Sequence[float | None],
                satisfactions: Sequence[Satisfaction], run_id: str | None) -> None:
    if not turns:
        return
    cur.execute(
        "UPDATE feedback_turns t SET sentiment = s.sentiment, satisfaction = s.satisfaction,"
        " scored_run_id = %s, score_attempts = 0, score_error = NULL, score_retry_at = NULL"
        " FROM unnest(%s::text[], %s::text[], %s::float8[], %s::text[])"
        " AS s(conversation_id, turn_id, sentiment, satisfaction)"
        " WHERE t.conversation_id = s.conversation_id AND t.turn_id = s.turn_id",
        (run_id, [t.conversation_id for t in turns], [t.turn_id for t in turns],
         list(sentiments), [str(s) for s in satisfactions]),
    )


def counts(cur) -> dict[str, int]:
    cur.execute("SELECT count(*), count(*) FILTER (WHERE satisfaction IS NULL),"
                " count(*) FILTER (WHERE satisfaction IS NULL AND score_retry_at > now())"
                " FROM feedback_turns")
    total, unscored, backing_off = cur.fetchone()
    return {"turns_stored": int(total), "turns_unscored": int(unscored),
            "turns_scoring_backing_off": int(backing_off)}


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

