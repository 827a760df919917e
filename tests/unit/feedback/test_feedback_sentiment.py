from __future__ import annotations

from collections.abc import Sequence

import pytest

from rag_assets.feedback.sentiment import (
    Satisfaction,
    SatisfactionThresholds,
    VaderScorer,
    classify_satisfaction,
    comment_sentiments,
    satisfaction_of,
)


class RecordingScorer:
    """A fake backend that scores by keyword and records each batch it was sent."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def score(self, texts: Sequence[str]) -> list[float]:
        self.batches.append(list(texts))
        return [0.8 if "great" in text else -0.8 if "awful" in text else 0.0 for text in texts]


@pytest.mark.parametrize(
    ("rating_up", "rating_score", "sentiment", "expected"),
    [
        (True, None, -0.9, Satisfaction.SATISFIED),  # the rating wins over the comment
        (False, None, 0.9, Satisfaction.DISSATISFIED),
        (True, 5.0, None, Satisfaction.SATISFIED),
        (False, 1.0, None, Satisfaction.DISSATISFIED),
        (None, 3.0, 0.9, Satisfaction.NEUTRAL),
        (None, None, 0.05, Satisfaction.SATISFIED),
        (None, None, 0.0499, Satisfaction.NEUTRAL),
        (None, None, -0.0499, Satisfaction.NEUTRAL),
        (None, None, -0.05, Satisfaction.DISSATISFIED),
        (None, None, None, Satisfaction.UNKNOWN),
    ],
)
def test_satisfaction_rule(rating_up, rating_score, sentiment, expected):
    assert satisfaction_of(rating_up, rating_score, sentiment) is expected


def test_thresholds_are_configurable():
    strict = SatisfactionThresholds(satisfied_at=0.5, dissatisfied_at=-0.5)
    assert satisfaction_of(None, None, 0.3, strict) is Satisfaction.NEUTRAL
    assert satisfaction_of(None, None, 0.6, strict) is Satisfaction.SATISFIED


def test_inverted_thresholds_are_refused():
    with pytest.raises(ValueError):
        SatisfactionThresholds(satisfied_at=-0.1, dissatisfied_at=0.1)


def test_comments_are_scored_in_one_batch_and_blank_comments_are_not_sent(make_event):
    events = [
        make_event(comment="great help"),
        make_event(comment=None),
        make_event(comment="   "),
        make_event(comment="awful answer"),
    ]
    scorer = RecordingScorer()

    sentiments = comment_sentiments(events, scorer)

    assert scorer.batches == [["great help", "awful answer"]]
    assert sentiments == [0.8, None, None, -0.8]


def test_no_scorer_call_when_nothing_to_score(make_event):
    scorer = RecordingScorer()
    assert comment_sentiments([make_event(comment=None)], scorer) == [None]
    assert scorer.batches == []


def test_a_scorer_that_loses_texts_is_an_error(make_event):
    class LossyScorer:
        def score(self, texts):
            return []

    with pytest.raises(ValueError):
        comment_sentiments([make_event(comment="fine")], LossyScorer())


def test_classify_satisfaction_combines_ratings_and_comments(make_event):
    events = [
        make_event(rating_up=None, rating_score=None, comment="great help"),
        make_event(rating_up=None, rating_score=None, comment="awful answer"),
        make_event(rating_up=True, rating_score=None, comment="awful answer"),
        make_event(rating_up=None, rating_score=None, comment=None),
    ]
    assert classify_satisfaction(events, RecordingScorer()) == [
        Satisfaction.SATISFIED,
        Satisfaction.DISSATISFIED,
        Satisfaction.SATISFIED,
        Satisfaction.UNKNOWN,
    ]


def test_vader_scores_clear_praise_and_complaints():
    praise, complaint, neutral = VaderScorer().score(
        [
            "Great answer, thank you so much!",
            "Useless. The gate info was wrong and I missed my flight.",
            "Flight BA123",
        ]
    )
    assert praise >= 0.5
    assert complaint <= -0.5
    assert -0.05 < neutral < 0.05


def test_vader_memo_gives_the_analyzers_own_scores():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from rag_assets.feedback.sentiment import VaderScorer

    analyzer = SentimentIntensityAnalyzer()
    texts = ["Great, thanks!", "Too vague.", "Great, thanks!", "", "meh", "Too vague."]
    scorer = VaderScorer()
    expected = [analyzer.polarity_scores(t)["compound"] for t in texts]
    assert scorer.score(texts) == expected
    assert scorer.score(list(reversed(texts))) == list(reversed(expected))
