"""Scoring queued turns: comment sentiment and the satisfaction category, then KPI windows queued.

Works through the turns `conversation_log` stored with no satisfaction yet, a bounded batch per
transaction (`FOR UPDATE SKIP LOCKED`, so concurrent runs split the work), scoring the comments
of a batch through `score_comments` (each distinct text once, in calls of the scorer's
`batch_size`). Turns without a comment are settled by their rating in one UPDATE in PostgreSQL.
The windows of the scored turns are queued for the KPI tables in the same transaction.

A turn whose comment could not be scored (a remote scorer gave up after its retries, or answered
nonsense) is not lost and not guessed: it stays unscored, out of the KPIs, and is retried by a
later run after a backoff (`turn_store.postpone_scoring`), like a document the embedder failed.
When every scorer call of a batch fails, the scorer is taken as down and the run scores only the
turns that need no scorer; the rest waits for the next run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from rag_assets.feedback import kpi_store, turn_store
from rag_assets.feedback.sentiment import (
    SatisfactionThresholds,
    SentimentScorer,
    VaderScorer,
    satisfaction_of,
    score_comments,
)
from rag_assets.feedback.windows import Granularity, Window, windows_covering

BATCH_SIZE = 20_000


@lru_cache(maxsize=1)
def default_scorer() -> SentimentScorer:
    """VADER, offline (its lexicon ships in the package); loaded once per process."""
    return VaderScorer()


@dataclass
class ScoreStats:
    turns_scored: int = 0
    comments_scored: int = 0
    comments_failed: int = 0
    scorer_down: bool = False
    satisfaction: Counter = field(default_factory=Counter)
    windows_queued: int = 0
    sentiment_sum: float = 0.0

    def metadata(self) -> dict:
        return {
            "turns_scored": self.turns_scored,
            "comments_scored": self.comments_scored,
            "comments_failed": self.comments_failed,
            "scorer_down": self.scorer_down,
            "mean_comment_sentiment": (round(self.sentiment_sum / self.comments_scored, 4)
                                       if self.comments_scored else None),
            "windows_queued": self.windows_queued,
            **{f"satisfaction_{name}": self.satisfaction[name]
               for name in ("satisfied", "neutral", "dissatisfied", "unknown")},
        }


def score_batch(cur, scorer: SentimentScorer, stats: ScoreStats, run_id: str | None,
                thresholds: SatisfactionThresholds = SatisfactionThresholds(),
                limit: int = BATCH_SIZE, comment_limit: int | None = None) -> int:
    """Score up to `limit` queued turns without a comment and `comment_limit` (default `limit`)
    with one; returns how many turns were settled or postponed (0 = nothing left to do).

    Turns whose comment is NULL need no scorer: their rating alone decides, so they are scored
    by one UPDATE in PostgreSQL (`turn_store.score_without_comment`, the same rule as
    `satisfaction_of`) and never travel to Python. The others (blank comments included, which
    `has_comment` decides) are read, scored and written back here.
    """
    done = _score_without_comment(cur, stats, run_id, limit)
    if stats.scorer_down:
        return done
    turns = turn_store.claim_unscored(cur, comment_limit or limit, with_comment_only=True)
    if not turns:
        return done
    comments = score_comments([t.comment for t in turns], scorer)
    _postpone_failed(cur, turns, comments.failed, stats, run_id)
    if comments.failed and len(comments.failed) == comments.commented:
        stats.scorer_down = True
    scored = [(t, s) for i, (t, s) in enumerate(zip(turns, comments.sentiments, strict=True))
              if i not in comments.failed]
    _save_scored(cur, scored, stats, run_id, thresholds)
    return done + len(turns)


def _postpone_failed(cur, turns, failed: dict, stats: ScoreStats, run_id: str | None) -> None:
    if failed:
        turn_store.postpone_scoring(cur, [turns[i] for i in failed],
                                    [str(error) for error in failed.values()], run_id)
        stats.comments_failed += len(failed)


def _save_scored(cur, scored: list, stats: ScoreStats, run_id: str | None,
                 thresholds: SatisfactionThresholds) -> None:
    if not scored:
        return
    turns = [t for t, _ in scored]
    sentiments = [s for _, s in scored]
    satisfactions = [satisfaction_of(t.rating_up, t.rating_score, s, thresholds)
                     for t, s in scored]
    turn_store.save_scores(cur, turns, sentiments, satisfactions, run_id)
    stats.windows_queued += kpi_store.queue_windows(
        cur, windows_covering(t.event_time for t in turns))
    comment_scores = [s for s in sentiments if s is not None]
    stats.turns_scored += len(turns)
    stats.comments_scored += len(comment_scores)
    stats.sentiment_sum += sum(comment_scores)
    stats.satisfaction.update(str(s) for s in satisfactions)


def _score_without_comment(cur, stats: ScoreStats, run_id: str | None, limit: int) -> int:
    counts, windows = turn_store.score_without_comment(cur, limit, run_id)
    scored = sum(counts.values())
    if scored:
        stats.windows_queued += kpi_store.queue_windows(
            cur, {Window(Granularity(g), start) for g, start in windows})
        stats.turns_scored += scored
        stats.satisfaction.update(counts)
    return scored
