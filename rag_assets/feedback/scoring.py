"""Scoring queued turns: comment sentiment and the satisfaction category, then KPI windows queued.

Works through the turns `conversation_log` stored with no satisfaction yet, a bounded batch per
transaction (`FOR UPDATE SKIP LOCKED`, so concurrent runs split the work), scoring all comments
of a batch in one scorer call. Turns without a comment are settled by their rating in one UPDATE
in PostgreSQL. The windows of the scored turns are queued for the KPI tables in
the same transaction.
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
    has_comment,
    satisfaction_of,
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
    satisfaction: Counter = field(default_factory=Counter)
    windows_queued: int = 0
    sentiment_sum: float = 0.0

    def metadata(self) -> dict:
        return {
            "turns_scored": self.turns_scored,
            "comments_scored": self.comments_scored,
            "mean_comment_sentiment": (round(self.sentiment_sum / self.comments_scored, 4)
                                       if self.comments_scored else None),
            "windows_queued": self.windows_queued,
            **{f"satisfaction_{name}": self.satisfaction[name]
               for name in ("satisfied", "neutral", "dissatisfied", "unknown")},
        }


def score_batch(cur, scorer: SentimentScorer, stats: ScoreStats, run_id: str | None,
                thresholds: SatisfactionThresholds = SatisfactionThresholds(),
                limit: int = BATCH_SIZE) -> int:
    """Score up to `limit` queued turns of each kind; returns how many (0 = queue empty).

    Turns whose comment is NULL need no scorer: their rating alone decides, so they are scored
    by one UPDATE in PostgreSQL (`turn_store.score_without_comment`, the same rule as
    `satisfaction_of`) and never travel to Python. The others (blank comments included, which
    `has_comment` decides) are read, scored and written back here.
    """
    scored = _score_without_comment(cur, stats, run_id, limit)
    turns = turn_store.claim_unscored(cur, limit, with_comment_only=True)
    if not turns:
        return scored
    commented = [i for i, t in enumerate(turns) if has_comment(t.comment)]
    scores = scorer.score([turns[i].comment for i in commented]) if commented else []
    if len(scores) != len(commented):
        raise ValueError(f"scorer returned {len(scores)} scores for {len(commented)} texts")
    sentiments: list[float | None] = [None] * len(turns)
    for index, score in zip(commented, scores, strict=True):
        sentiments[index] = score
    satisfactions = [satisfaction_of(t.rating_up, t.rating_score, s, thresholds)
                     for t, s in zip(turns, sentiments, strict=True)]
    turn_store.save_scores(cur, turns, sentiments, satisfactions, run_id)
    stats.windows_queued += kpi_store.queue_windows(
        cur, windows_covering(t.event_time for t in turns))
    stats.turns_scored += len(turns)
    stats.comments_scored += len(commented)
    stats.sentiment_sum += sum(scores)
    stats.satisfaction.update(str(s) for s in satisfactions)
    return scored + len(turns)


def _score_without_comment(cur, stats: ScoreStats, run_id: str | None, limit: int) -> int:
    counts, windows = turn_store.score_without_comment(cur, limit, run_id)
    scored = sum(counts.values())
    if scored:
        stats.windows_queued += kpi_store.queue_windows(
            cur, {Window(Granularity(g), start) for g, start in windows})
        stats.turns_scored += scored
        stats.satisfaction.update(counts)
    return scored
