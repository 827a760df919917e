"""The comment sentiment scorer of `feedback_scored`: offline VADER or a text model on Bedrock.

* "vader" (the default) — VADER's compound score, offline.
* "bedrock" — `BedrockSentimentScorer`: an Anthropic Claude or Amazon Nova model through
  InvokeModel, `comments_per_call` comments per call, retried like the Bedrock embedder.
  Credentials come from boto3's usual chain (environment, profile or instance role), as for the
  embedder; they never pass through Dagster config.
"""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from rag_assets.feedback.bedrock_sentiment import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MODEL_ID,
    BedrockSentimentScorer,
)
from rag_assets.feedback.scoring import BATCH_SIZE, default_scorer
from rag_assets.feedback.sentiment import SentimentScorer
from rag_assets.platform.retry import RetryPolicy
from resources.env import given, optional_env, optional_int_env

BACKENDS = ("vader", "bedrock")


class SentimentResource(ConfigurableResource):
    # A plain str (checked when the scorer is built) so that it can come from an EnvVar.
    backend: str = Field(
        default="vader", description='"vader" (offline, the default) or "bedrock".'
    )
    bedrock_model_id: str = Field(
        default=DEFAULT_MODEL_ID,
        description="An Anthropic Claude or Amazon Nova text model (or inference profile) id.",
    )
    aws_region: str = "us-east-1"
    bedrock_endpoint_url: str | None = Field(
        default=None, description="Override, e.g. a VPC endpoint or a local stand-in."
    )
    comments_per_call: int = Field(
        default=DEFAULT_BATCH_SIZE, description="Comments scored by one Bedrock call."
    )
    comments_per_transaction: int = Field(
        default=400,
        description="Bedrock only: commented turns claimed per PostgreSQL transaction, so that "
        "locks are short and a failed run loses little work (VADER takes 20,000).",
    )
    max_attempts: int = Field(
        default=5, description="Bedrock calls per batch of comments before it counts as failed."
    )

    _scorer: SentimentScorer | None = PrivateAttr(default=None)

    def get_scorer(self) -> SentimentScorer:
        """The scorer, built once per resource instance."""
        if self._scorer is None:
            self._scorer = self._build()
        return self._scorer

    def claim_limit(self) -> int:
        """Commented turns to claim per transaction."""
        return self.comments_per_transaction if self.backend == "bedrock" else BATCH_SIZE

    def _build(self) -> SentimentScorer:
        if self.backend not in BACKENDS:
            raise ValueError(
                f"unknown sentiment backend {self.backend!r}; expected one of {BACKENDS}"
            )
        if self.backend == "vader":
            return default_scorer()
        return BedrockSentimentScorer(
            model_id=self.bedrock_model_id,
            batch_size=self.comments_per_call,
            region_name=self.aws_region,
            endpoint_url=self.bedrock_endpoint_url,
            retry_policy=RetryPolicy(max_attempts=self.max_attempts),
        )


def sentiment_resource_from_env() -> SentimentResource:
    """SENTIMENT_BACKEND, BEDROCK_SENTIMENT_MODEL_ID, AWS_REGION, BEDROCK_ENDPOINT_URL,
    SENTIMENT_COMMENTS_PER_CALL, SENTIMENT_MAX_ATTEMPTS — each optional."""
    return SentimentResource(**given(
        backend=optional_env("SENTIMENT_BACKEND"),
        bedrock_model_id=optional_env("BEDROCK_SENTIMENT_MODEL_ID"),
        aws_region=optional_env("AWS_REGION"),
        bedrock_endpoint_url=optional_env("BEDROCK_ENDPOINT_URL"),
        comments_per_call=optional_int_env("SENTIMENT_COMMENTS_PER_CALL"),
        max_attempts=optional_int_env("SENTIMENT_MAX_ATTEMPTS"),
    ))
