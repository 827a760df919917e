"""Scoring queued turns: comment sentiment and the satisfaction category, then KPI windows queued.

Works through the turns `conversation_log` stored with no satisfaction yet, a bounded batch per
transaction (`FOR UPDATE SKIP LOCKED`, so concurrent runs split the work), scoring all comments
of a batch in one scorer call. The windows of the scored turns are queued for the KPI tables in
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
from rag_assets.feedback.windows import windows_covering

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
    """Score up to `limit` queued turns; returns how many (0 = queue empty)."""
    turns = turn_store.claim_unscored(cur, limit)
    if not turns:
        return 0
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
    return len(turns)
