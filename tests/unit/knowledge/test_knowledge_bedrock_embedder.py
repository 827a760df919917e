import numpy as np
import pytest
from bedrock_standin import fast_retry_options, standin_embedding

from rag_assets.knowledge.embedding import (
    BedrockTitanEmbedder,
    EmbeddingFailed,
    RetryPolicy,
)


def _embedder(standin, max_attempts=4, read_timeout_seconds=5.0):
    options, sleeps = fast_retry_options(standin, max_attempts, read_timeout_seconds)
    return BedrockTitanEmbedder(dimension=256, **options), sleeps


def test_titan_request_and_response_through_boto3(bedrock_standin):
    embedder, sleeps = _embedder(bedrock_standin)
    vectors = embedder.embed(["cabin bags", "refunds"])
    assert vectors.shape == (2, 256) and vectors.dtype == np.float32
    np.testing.assert_allclose(
        vectors[0], standin_embedding("cabin bags", 256), atol=1e-6
    )
    np.testing.assert_allclose(vectors[1], standin_embedding("refunds", 256), atol=1e-6)
    first = bedrock_standin.state.requests[0]
    assert first["model_id"] == "amazon.titan-embed-text-v2:0"
    assert first["body"] == {
        "inputText": "cabin bags",
        "dimensions": 256,
        "normalize": True,
    }
    assert sleeps == []


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_retried(bedrock_standin, status):
    embedder, sleeps = _embedder(bedrock_standin)
    bedrock_standin.state.fail_next(2, status)
    vectors = embedder.embed(["seat selection"])
    np.testing.assert_allclose(
        vectors[0], standin_embedding("seat selection", 256), atol=1e-6
    )
    assert len(bedrock_standin.state.requests) == 3
    assert len(sleeps) == 2 and all(0 <= delay <= 0.05 for delay in sleeps)


def test_gives_up_after_the_bounded_number_of_attempts(bedrock_standin):
    embedder, sleeps = _embedder(bedrock_standin, max_attempts=3)
    bedrock_standin.state.fail_next(10, 429)
    with pytest.raises(EmbeddingFailed, match="gave up after 3 attempts"):
        embedder.embed(["anything"])
    assert len(bedrock_standin.state.requests) == 3
    assert len(sleeps) == 2


def test_a_client_error_is_not_retried(bedrock_standin):
    embedder, sleeps = _embedder(bedrock_standin)
    bedrock_standin.state.fail_next(1, 400)
    with pytest.raises(EmbeddingFailed, match="ValidationException"):
        embedder.embed(["bad input"])
    assert len(bedrock_standin.state.requests) == 1
    assert sleeps == []


def test_a_read_timeout_is_retried(bedrock_standin):
    embedder, sleeps = _embedder(bedrock_standin, read_timeout_seconds=0.3)
    bedrock_standin.state.delay_next(1, 1.0)
    vectors = embedder.embed(["slow"])
    np.testing.assert_allclose(vectors[0], standin_embedding("slow", 256), atol=1e-6)
    assert len(sleeps) == 1


def test_backoff_grows_exponentially_up_to_the_cap():
    policy = RetryPolicy(max_attempts=10, base_delay_seconds=0.5, max_delay_seconds=4.0)
    ceilings = [
        policy.delay_before_retry(attempt, rng=lambda: 1.0) for attempt in range(1, 7)
    ]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert (
        policy.delay_before_retry(3, rng=lambda: 0.25) == 0.5
    )  # jitter scales within the ceiling


def test_a_dimension_titan_does_not_offer_is_refused_before_any_call():
    with pytest.raises(ValueError, match="return 256, 512, 1024 dimensions, not 384"):
        BedrockTitanEmbedder(dimension=384)
