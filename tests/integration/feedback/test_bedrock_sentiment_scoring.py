"""`feedback_scored` with the Bedrock sentiment backend (the local InvokeModel stand-in) against
real Kafka, S3 and PostgreSQL: comments scored in batches; when Bedrock keeps failing, commented
turns stay queued with their error and are scored by a later run, and no turn is lost."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from dagster import materialize

from rag_assets.feedback.assets import conversation_log, feedback_scored
from resources.sentiment import SentimentResource
from tests.integration.customers.helpers import Message, publish
from tests.unit.knowledge.bedrock_standin import standin_sentiment

pytestmark = pytest.mark.integration

T0 = datetime(2025, 2, 3, 9, tzinfo=timezone.utc)
COMMENTS = ["great answer, thanks", "useless", "it was fine", "awful wait", None, "   ",
            "great answer, thanks"]


def _events() -> list[dict]:
    return [{
        "conversation_id": f"c-{i}", "turn_id": 1, "customer_ref": f"crm:{i}",
        "ts": (T0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "question": "q", "answer": "a", "model_id": "model-a", "latency_ms": 100,
        "retrieved_ids": [], "rating": None, "comment": COMMENTS[i % len(COMMENTS)],
    } for i in range(21)]


def _publish(kafka, events: list[dict]) -> None:
    publish(kafka, [Message("app.feedback", e["conversation_id"].encode(), json.dumps(e).encode())
                    for e in events], partitions=1)


def _score(kafka, s3, postgres, sentiment, rebuild=True):
    result = materialize(
        [conversation_log, feedback_scored],
        resources={"kafka": kafka, "s3": s3, "postgres": postgres, "sentiment": sentiment},
        selection=None if rebuild else [feedback_scored.key],
        run_config={"ops": {"feedback_scored": {"config": {"rebuild": rebuild}}}},
    )
    assert result.success
    return result.asset_materializations_for_node("feedback_scored")[0].metadata


def _turns(postgres) -> dict[str, tuple]:
    with postgres.transaction() as cur:
        cur.execute("SELECT conversation_id, comment, sentiment, satisfaction, score_attempts,"
                    " score_error, score_retry_at FROM feedback_turns")
        return {row[0]: row[1:] for row in cur.fetchall()}


def _due_now(postgres) -> None:
    """Let the postponed turns' backoff pass."""
    with postgres.transaction() as cur:
        cur.execute("UPDATE feedback_turns SET score_retry_at = now() - interval '1 second'"
                    " WHERE score_retry_at IS NOT NULL")


def _is_commented(turn: tuple) -> bool:
    return bool(turn[0] and turn[0].strip())


def test_feedback_scored_with_bedrock_retries_failed_comments_on_a_later_run(
        kafka, s3, postgres, bedrock_standin):
    _publish(kafka, _events())
    sentiment = SentimentResource(backend="bedrock", bedrock_endpoint_url=bedrock_standin.endpoint_url,
                                  comments_per_call=2, max_attempts=2)
    state = bedrock_standin.state

    # The first call gives up after its 2 attempts; the second succeeds. The failed call's
    # comments stay queued with their error, the others are scored.
    state.fail_next(2, 503)
    metadata = _score(kafka, s3, postgres, sentiment)
    assert len(state.requests) == 3  # 4 distinct comments, 2 per call, the first call twice
    failed_texts = {"great answer, thanks", "useless"}
    assert metadata["comments_failed"].value == 9 and metadata["scorer_down"].value is False
    assert metadata["comments_scored"].value == 6
    turns = _turns(postgres)
    assert sum(map(_is_commented, turns.values())) == 15
    for comment, score, satisfaction, attempts, error, retry_at in turns.values():
        if comment in failed_texts:  # not scored, not guessed
            assert (score, satisfaction, attempts) == (None, None, 1)
            assert "gave up after 2 attempts" in error and retry_at > datetime.now(timezone.utc)
        elif _is_commented((comment,)):
            assert score == standin_sentiment(comment) and attempts == 0
        else:
            assert (score, satisfaction) == (None, "unknown")
    assert (metadata["turns_unscored"].value, metadata["turns_scoring_backing_off"].value) == (9, 9)
    assert not any(text in str(dict(metadata)) for text in failed_texts)

    # Before their backoff has passed, a run leaves them alone.
    state.requests.clear()
    metadata = _score(kafka, s3, postgres, sentiment, rebuild=False)
    assert state.requests == [] and metadata["turns_unscored"].value == 9

    # Due again, but Bedrock is down: every call of the batch fails, so the run stops calling it.
    _due_now(postgres)
    state.fail_next(1000, 500)
    metadata = _score(kafka, s3, postgres, sentiment, rebuild=False)
    assert metadata["scorer_down"].value is True and metadata["comments_failed"].value == 9
    assert {t[3] for t in _turns(postgres).values() if t[0] in failed_texts} == {2}

    # Back up: the next run after the backoff scores them, and the retry state is cleared.
    state.failures.clear()
    state.requests.clear()
    _due_now(postgres)
    metadata = _score(kafka, s3, postgres, sentiment, rebuild=False)
    assert metadata["turns_scored"].value == 9 and metadata["turns_unscored"].value == 0
    assert [len(json.loads(r["body"]["messages"][0]["content"][0]["text"])["comments"])
            for r in state.requests] == [2]
    for comment, score, satisfaction, attempts, error, retry_at in _turns(postgres).values():
        if _is_commented((comment,)):
            assert score == standin_sentiment(comment)
            assert satisfaction == ("satisfied" if score > 0 else
                                    "dissatisfied" if score < 0 else "neutral")
            assert (attempts, error, retry_at) == (0, None, None)
