"""Who may call the retrieval endpoint, how often and how many at once: pure rules, no I/O.

* `exposure_error`: the endpoint refuses to start without client credentials, unless it is bound
  to a loopback address and `--insecure-no-auth` was given on purpose.
* `token_digest`: tokens are kept as SHA-256 digests only (they are 256-bit random strings, so a
  fast hash is enough: there is nothing to guess).
* `RateLimiter`: a token bucket per client; a lookup beyond it answers 429 with the seconds to
  wait, which throttles enumeration of customer references.
* `ConcurrencyGate`: at most N requests in flight; the next answers 503 at once instead of
  queueing behind slow ones.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

INSECURE_NO_AUTH_FLAG = "--insecure-no-auth"
TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_error(host: str, insecure_no_auth: bool, credentials_configured: bool) -> str | None:
    """Why the endpoint must not start with these settings, or None when it may."""
    if insecure_no_auth:
        if is_loopback(host):
            return None
        return (f"{INSECURE_NO_AUTH_FLAG} is only allowed on a loopback address (127.0.0.1, ::1 "
                f"or localhost), not {host!r}: add a client token instead")
    if credentials_configured:
        return None
    return ("no client can call the endpoint: add one with `rag-assets retrieval-clients add "
            f"NAME` (or set RAG_RETRIEVAL_TOKEN), or for local use pass {INSECURE_NO_AUTH_FLAG} "
            "with a loopback --host")


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`rate` requests per second per client, with bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 10_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        self.rate, self.burst, self.clock = rate, burst, clock
        self.max_clients = max_clients
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def wait_for(self, client: str) -> float:
        """0 when `client` may go on now (and one request is counted), else the seconds until
        it may."""
        with self._lock:
            now = self.clock()
            bucket = self._buckets.get(client)
            if bucket is None:
                if len(self._buckets) >= self.max_clients:  # bounded memory: forget full buckets
                    self._forget_full(now)
                bucket = self._buckets[client] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        full = [c for c, b in self._buckets.items()
                if b.tokens + (now - b.updated) * self.rate >= self.burst]
        for client in full:
            del self._buckets[client]


class ConcurrencyGate:
    """At most `limit` holders at once; `try_enter` never waits."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the concurrency limit must be at least 1")
        self.limit = limit
        self._inside = 0
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        with self._lock:
            if self._inside >= self.limit:
                return False
            self._inside += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._inside -= 1
