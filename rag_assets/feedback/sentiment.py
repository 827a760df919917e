"""Comment sentiment and the satisfaction category of a turn.

A `SentimentScorer` takes a batch of texts and returns one score per text in [-1, 1]
(negative … positive). Batches let a remote backend (Amazon Bedrock,
`rag_assets.feedback.bedrock_sentiment`) make one call per micro-batch instead of one per
comment. `VaderScorer` is the offline default: VADER's compound score, whose lexicon ships
inside the `vaderSentiment` package. `score_comments` sends each distinct comment once, in calls
of at most the scorer's `batch_size`, and keeps going when a call fails.

Satisfaction rule (`satisfaction_of`):

1. The rating decides when there is one: thumbs up or score >= 4 → satisfied; thumbs down or
   score <= 2 → dissatisfied; a score strictly between 2 and 4 → neutral. An explicit rating is
   the user's own verdict, so a sarcastic or mixed comment does not override it.
2. Without a rating, a non-blank comment decides by its score: >= +0.05 satisfied,
   <= -0.05 dissatisfied, otherwise neutral (VADER's published thresholds).
3. Neither a rating nor a comment → unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from rag_assets.feedback.events import FeedbackEvent


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"
    NEUTRAL = "neutral"
    DISSATISFIED = "dissatisfied"
    UNKNOWN = "unknown"


class SentimentScoringFailed(RuntimeError):
    """A scorer could not score a batch: its backend gave up after its retries, or answered
    something that is not one valid score per text. The message holds no comment text."""


class SentimentScorer(Protocol):
    """A scorer may also have an int attribute `batch_size`: `score_comments` then sends it at
    most that many texts per call, and a call that raises `SentimentScoringFailed` fails only
    its own texts."""

    def score(self, texts: Sequence[str]) -> list[float]:
        """One score in [-1, 1] per text, in the same order."""
        ...


class VaderScorer:
    """VADER compound score, offline.

    VADER is a pure function of the text, and short feedback comments repeat a lot ("Thanks!",
    "Too vague."), so scores are memoised per text (bounded: the memo is emptied when full).
    """

    MEMO_SIZE = 100_000

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()
        self._memo: dict[str, float] = {}

    def score(self, texts: Sequence[str]) -> list[float]:
        memo = self._memo
        scores = []
        for text in texts:
            score = memo.get(text)
            if score is None:
                if len(memo) >= self.MEMO_SIZE:
                    memo.clear()
                score = memo[text] = float(self._analyzer.polarity_scores(text)["compound"])
            scores.append(score)
        return scores


@dataclass(frozen=True)
class SatisfactionThresholds:
    satisfied_at: float = 0.05
    dissatisfied_at: float = -0.05

    def __post_init__(self) -> None:
        if not -1.0 <= self.dissatisfied_at < self.satisfied_at <= 1.0:
            raise ValueError("need -1 <= dissatisfied_at < satisfied_at <= 1")


def has_comment(comment: str | None) -> bool:
    return comment is not None and comment.strip() != ""


def satisfaction_of(
    rating_up: bool | None,
    rating_score: float | None,
    comment_sentiment: float | None,
    thresholds: SatisfactionThresholds = SatisfactionThresholds(),
) -> Satisfaction:
    """The satisfaction category of one turn (see the module docstring for the rule)."""
    if rating_up is True:
        return Satisfaction.SATISFIED
    if rating_up is False:
        return Satisfaction.DISSATISFIED
    if rating_score is not None:
        return Satisfaction.NEUTRAL
    if comment_sentiment is None:
        return Satisfaction.UNKNOWN
    if comment_sentiment >= thresholds.satisfied_at:
        return Satisfaction.SATISFIED
    if comment_sentiment <= thresholds.dissatisfied_at:
        return Satisfaction.DISSATISFIED
    return Satisfaction.NEUTRAL


@dataclass
class CommentScores:
    """The outcome of `score_comments`, by position in its input."""

    sentiments: list[float | None]  # None: no comment, or its scoring failed
    failed: dict[int, SentimentScoringFailed] = field(default_factory=dict)

    @property
    def commented(self) -> int:
        """Positions that had a comment (scored or failed)."""
        return sum(s is not None for s in self.sentiments) + len(self.failed)


def score_comments(comments: Sequence[str | None], scorer: SentimentScorer) -> CommentScores:
    """Score every non-blank comment; each distinct text is sent once.

    Texts go in calls of at most `scorer.batch_size` (all in one call without it). A call that
    raises `SentimentScoringFailed` marks its comments failed and the others are still scored.
    """
    positions: dict[str, list[int]] = {}
    for index, comment in enumerate(comments):
        if has_comment(comment):
            positions.setdefault(comment, []).append(index)
    texts = list(positions)
    size = getattr(scorer, "batch_size", None) or max(len(texts), 1)
    result = CommentScores([None] * len(comments))
    for start in range(0, len(texts), size):
        chunk = texts[start : start + size]
        try:
            scores = _score_call(scorer, chunk)
        except SentimentScoringFailed as error:
            result.failed.update((i, error) for text in chunk for i in positions[text])
            continue
        for text, score in zip(chunk, scores, strict=True):
            for index in positions[text]:
                result.sentiments[index] = score
    return result


def _score_call(scorer: SentimentScorer, texts: list[str]) -> list[float]:
    scores = scorer.score(texts)
    if len(scores) != len(texts):
        raise ValueError(f"scorer returned {len(scores)} scores for {len(texts)} texts")
    return scores


def comment_sentiments(
    events: Sequence[FeedbackEvent], scorer: SentimentScorer
) -> list[float | None]:
    """The comment score of each event (None without a comment); any failure is raised."""
    scored = score_comments([event.comment for event in events], scorer)
    if scored.failed:
        raise next(iter(scored.failed.values()))
    return scored.sentiments


def classify_satisfaction(
    events: Sequence[FeedbackEvent],
    scorer: SentimentScorer,
    thresholds: SatisfactionThresholds = SatisfactionThresholds(),
) -> list[Satisfaction]:
    """The satisfaction of each event; comments are scored in a single batch."""
    sentiments = comment_sentiments(events, scorer)
    return [
        satisfaction_of(event.rating_up, event.rating_score, sentiment, thresholds)
        for event, sentiment in zip(events, sentiments, strict=True)
    ]
