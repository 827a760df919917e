"""The Bedrock sentiment scorer through real boto3 against the local InvokeModel stand-in."""

import json

import pytest
from dagster import asset, materialize

from rag_assets.feedback.bedrock_sentiment import BedrockSentimentScorer, parse_scores
from rag_assets.feedback.sentiment import SentimentScoringFailed, score_comments
from resources.sentiment import SentimentResource, sentiment_resource_from_env
from tests.unit.knowledge.bedrock_standin import fast_retry_options, standin_sentiment

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "us.amazon.nova-lite-v1:0"
COMMENTS = ["great answer, thanks", "useless", "it was fine", "awful wait"]


def _scorer(standin, model_id=CLAUDE, batch_size=20, max_attempts=3, read_timeout_seconds=5.0):
    options, sleeps = fast_retry_options(standin, max_attempts, read_timeout_seconds)
    return BedrockSentimentScorer(model_id=model_id, batch_size=batch_size, **options), sleeps


def _sent_comments(request: dict) -> list[str]:
    return json.loads(request["body"]["messages"][0]["content"][0]["text"])["comments"]


def test_claude_request_and_answer_through_boto3(bedrock_standin):
    scorer, sleeps = _scorer(bedrock_standin)
    assert scorer.score(COMMENTS) == [standin_sentiment(c) for c in COMMENTS]
    [request] = bedrock_standin.state.requests
    assert request["model_id"] == CLAUDE
    body = request["body"]
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    assert body["temperature"] == 0 and body["max_tokens"] >= 32 + 8 * len(COMMENTS)
    assert '"scores"' in body["system"]
    assert _sent_comments(request) == COMMENTS
    assert sleeps == []


def test_nova_request_and_answer_through_boto3(bedrock_standin):
    scorer, _ = _scorer(bedrock_standin, model_id=NOVA)
    assert scorer.score(COMMENTS) == [standin_sentiment(c) for c in COMMENTS]
    body = bedrock_standin.state.requests[0]["body"]
    assert body["schemaVersion"] == "messages-v1" and body["inferenceConfig"]["temperature"] == 0
    assert body["system"][0]["text"] and "anthropic_version" not in body


def test_comments_are_batched_per_call(bedrock_standin):
    scorer, _ = _scorer(bedrock_standin, batch_size=20)
    texts = [f"comment {i} {'great' if i % 3 else 'awful'}" for i in range(45)]
    assert scorer.score(texts) == [standin_sentiment(t) for t in texts]
    sent = [_sent_comments(r) for r in bedrock_standin.state.requests]
    assert [len(batch) for batch in sent] == [20, 20, 5]
    assert [t for batch in sent for t in batch] == texts


def test_long_comments_are_cut_before_sending(bedrock_standin):
    scorer, _ = _scorer(bedrock_standin)
    scorer.score(["x" * 5000])
    assert _sent_comments(bedrock_standin.state.requests[0]) == ["x" * 2000]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_retried(bedrock_standin, status):
    scorer, sleeps = _scorer(bedrock_standin)
    bedrock_standin.state.fail_next(2, status)
    assert scorer.score(["great"]) == [0.8]
    assert len(bedrock_standin.state.requests) == 3
    assert len(sleeps) == 2 and all(0 <= delay <= 0.05 for delay in sleeps)


def test_a_read_timeout_is_retried(bedrock_standin):
    scorer, sleeps = _scorer(bedrock_standin, read_timeout_seconds=0.3)
    bedrock_standin.state.delay_next(1, 1.0)
    assert scorer.score(["awful"]) == [-0.7]
    assert len(sleeps) == 1


def test_gives_up_after_the_bounded_number_of_attempts(bedrock_standin):
    scorer, sleeps = _scorer(bedrock_standin, max_attempts=3)
    bedrock_standin.state.fail_next(10, 503)
    with pytest.raises(SentimentScoringFailed, match="gave up after 3 attempts") as raised:
        scorer.score(["my booking ref is ABC123"])
    assert "ABC123" not in str(raised.value)
    assert len(bedrock_standin.state.requests) == 3 and len(sleeps) == 2


def test_a_client_error_is_not_retried(bedrock_standin):
    scorer, sleeps = _scorer(bedrock_standin)
    bedrock_standin.state.fail_next(1, 403)
    with pytest.raises(SentimentScoringFailed, match="AccessDeniedException"):
        scorer.score(["anything"])
    assert len(bedrock_standin.state.requests) == 1 and sleeps == []


@pytest.mark.parametrize(
    ("answer", "stop_reason", "reason"),
    [
        ("The first one is positive.", "end_turn", "not JSON"),
        ('{"score": [0.1, 0.2]}', "end_turn", 'no "scores" list'),
        ('{"scores": [0.1]}', "end_turn", "1 scores for 2 comments"),
        ('{"scores": [0.1, 1.5]}', "end_turn", "score 1 is outside"),
        ('{"scores": [0.1, "high"]}', "end_turn", "score 1 is a str"),
        ('{"scores": [true, 0.2]}', "end_turn", "score 0 is a bool"),
        ('{"scores": [0.1, NaN]}', "end_turn", "score 1 is outside"),
        ('{"scores": [0.1, 0.', "max_tokens", "cut off"),
    ],
)
def test_a_malformed_answer_is_a_clear_error_not_a_zero(bedrock_standin, answer, stop_reason,
                                                         reason):
    scorer, sleeps = _scorer(bedrock_standin)
    bedrock_standin.state.answer_next(1, answer, stop_reason)
    with pytest.raises(SentimentScoringFailed, match="malformed answer") as raised:
        scorer.score(["my seat was 12A", "great"])
    message = str(raised.value)
    assert reason in message
    assert "12A" not in message and answer not in message  # no comment or answer text
    assert len(bedrock_standin.state.requests) == 1 and sleeps == []


def test_a_fenced_json_answer_is_read():
    assert parse_scores('```json\n{"scores": [0.5, -1]}\n```', 2) == [0.5, -1.0]


def test_an_unknown_model_family_is_refused():
    with pytest.raises(ValueError, match="Claude or Amazon Nova"):
        BedrockSentimentScorer(model_id="amazon.titan-embed-text-v2:0", client=object())


def test_a_failed_call_fails_only_its_own_comments(bedrock_standin):
    scorer, _ = _scorer(bedrock_standin, batch_size=2)
    bedrock_standin.state.answer_next(1, "no idea")  # the first call answers nonsense
    comments = ["great", None, "awful", "fine", "great", "useless", "   "]
    scored = score_comments(comments, scorer)
    # distinct texts are sent once: ["great", "awful"] (fails), ["fine", "useless"]
    assert [_sent_comments(r) for r in bedrock_standin.state.requests] == [
        ["great", "awful"], ["fine", "useless"]]
    assert sorted(scored.failed) == [0, 2, 4]
    assert scored.sentiments == [None, None, None, 0.0, None, -0.7, None]
    assert scored.commented == 5


def _scorer_in_an_asset(resource):
    @asset
    def scored(sentiment: SentimentResource):
        chosen = sentiment.get_scorer()
        return type(chosen).__name__, sentiment.claim_limit(), chosen.score(["great", "awful"])

    result = materialize([scored], resources={"sentiment": resource})
    assert result.success
    return result.output_for_node("scored")


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("SENTIMENT_BACKEND", "BEDROCK_SENTIMENT_MODEL_ID", "BEDROCK_ENDPOINT_URL",
                 "SENTIMENT_COMMENTS_PER_CALL", "SENTIMENT_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_vader_is_the_default(clean_env):
    kind, limit, scores = _scorer_in_an_asset(sentiment_resource_from_env())
    assert (kind, limit) == ("VaderScorer", 20_000)
    assert scores[0] > 0.05 and scores[1] < -0.05


def test_bedrock_backend_is_configured_from_the_environment(clean_env, bedrock_standin):
    clean_env.setenv("SENTIMENT_BACKEND", "bedrock")
    clean_env.setenv("BEDROCK_SENTIMENT_MODEL_ID", NOVA)
    clean_env.setenv("BEDROCK_ENDPOINT_URL", bedrock_standin.endpoint_url)
    clean_env.setenv("SENTIMENT_COMMENTS_PER_CALL", "1")
    clean_env.setenv("SENTIMENT_MAX_ATTEMPTS", "2")
    clean_env.setenv("AWS_REGION", "eu-west-1")
    kind, limit, scores = _scorer_in_an_asset(sentiment_resource_from_env())
    assert (kind, limit, scores) == ("BedrockSentimentScorer", 400, [0.8, -0.7])
    assert [r["model_id"] for r in bedrock_standin.state.requests] == [NOVA, NOVA]
    bedrock_standin.state.fail_next(5, 500)
    scorer = SentimentResource(backend="bedrock", bedrock_model_id=NOVA, max_attempts=2,
                               bedrock_endpoint_url=bedrock_standin.endpoint_url).get_scorer()
    with pytest.raises(SentimentScoringFailed, match="gave up after 2 attempts"):
        scorer.score(["slow"])


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown sentiment backend 'textblob'"):
        SentimentResource(backend="textblob").get_scorer()
