"""Retry rules shared by the remote backends (Bedrock embeddings and sentiment).

Two levels:

* Within a run, `RetryPolicy`: a bounded number of attempts with capped exponential backoff and
  full jitter between them.
* Across runs, `retry_delay`: work that still failed after its attempts stays queued and is
  picked up again once this delay has passed (1 min, 2 min, 4 min, ... capped at 1 hour).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=1)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with capped exponential backoff and full jitter."""

    max_attempts: int = 5
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 20.0

    def delay_before_retry(
        self, failed_attempts: int, rng: Callable[[], float] = random.random
    ) -> float:
        ceiling = min(
            self.max_delay_seconds, self.base_delay_seconds * 2 ** (failed_attempts - 1)
        )
        return ceiling * rng()


def retry_delay(attempts: int) -> timedelta:
    """Wait before the next run's attempt after `attempts` consecutive failed runs."""
    return min(RETRY_CAP, RETRY_BASE * 2 ** max(0, attempts - 1))
