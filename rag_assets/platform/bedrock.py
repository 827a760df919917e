"""Amazon Bedrock Runtime InvokeModel with JSON in and out, under the project's retry rules.

Used by the Titan embedder (knowledge) and the Bedrock sentiment scorer (feedback), so both
retry the same way: botocore's own retries are off and attempts are counted here; timeouts,
dropped connections, throttling (429) and server errors (5xx) are retried with capped
exponential backoff and jitter (`RetryPolicy`); anything else, or the last attempt, raises the
caller's failure type. The request body is never logged (it may hold personal data).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from rag_assets.platform.retry import RetryPolicy

logger = logging.getLogger(__name__)

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "ModelNotReadyException",
    }
)


class BedrockCallFailed(RuntimeError):
    """A Bedrock call gave up after its bounded retries (or failed permanently)."""


def is_retryable(error: Exception) -> bool:
    """Timeouts, connection drops, throttling (429) and server errors (5xx) are worth retrying."""
    from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

    if isinstance(error, (ReadTimeoutError, ConnectionError)):
        return True
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in THROTTLING_CODES or status == 429 or status >= 500
    return False


def runtime_client(
    region_name: str, endpoint_url: str | None, read_timeout_seconds: float
) -> Any:
    """A `bedrock-runtime` client that makes exactly one attempt per call."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        read_timeout=read_timeout_seconds,
        connect_timeout=min(10.0, read_timeout_seconds),
    )
    return boto3.client(
        "bedrock-runtime", region_name=region_name, endpoint_url=endpoint_url, config=config
    )


class BedrockInvoker:
    """InvokeModel on one model: a JSON body in, the parsed JSON answer out, retried.

    `failure` is the exception type raised when the call gives up (the caller's own, e.g.
    `EmbeddingFailed`); its message names the model, the attempts and the error, never the body.
    """

    def __init__(
        self,
        model_id: str,
        *,
        failure: type[Exception] = BedrockCallFailed,
        region_name: str = "us-east-1",
        endpoint_url: str | None = None,
        retry_policy: RetryPolicy = RetryPolicy(),
        read_timeout_seconds: float = 30.0,
        client: Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.model_id = model_id
        self.failure = failure
        self.retry_policy = retry_policy
        self._sleep = sleep
        self._client = client or runtime_client(region_name, endpoint_url, read_timeout_seconds)

    def invoke(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body)
        for attempt in range(1, self.retry_policy.max_attempts + 1):
            try:
                return self._invoke_once(data)
            except Exception as error:
                self._give_up_unless_retryable(error, attempt)
                delay = self.retry_policy.delay_before_retry(attempt)
                logger.warning(
                    "Bedrock call to %s failed (%s), attempt %d; retrying in %.2fs",
                    self.model_id, type(error).__name__, attempt, delay,
                )
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _invoke_once(self, data: str) -> dict[str, Any]:
        response = self._client.invoke_model(
            modelId=self.model_id,
            body=data,
            contentType="application/json",
            accept="application/json",
        )
        payload = json.loads(response["body"].read())
        if not isinstance(payload, dict):
            raise ValueError(f"answer is a JSON {type(payload).__name__}, not an object")
        return payload

    def _give_up_unless_retryable(self, error: Exception, attempt: int) -> None:
        described = f"{type(error).__name__}: {error}"
        if not is_retryable(error):
            raise self.failure(f"{self.model_id}: {described}") from error
        if attempt == self.retry_policy.max_attempts:
            raise self.failure(
                f"{self.model_id}: gave up after {attempt} attempts: {described}"
            ) from error
