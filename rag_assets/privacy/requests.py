"""An erasure request from the `privacy.erasure` topic (pure, no I/O).

Each event is `{"customer_ref": ..., "request_id": ...}`; `parse_erasure_event` validates it
(an unusable one becomes a dead letter, with a reason that holds no personal data). A request
without an id is named by its topic, partition and offset, so a redelivered event is the same
request. The CLI names its requests with `new_request_id`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

MAX_REQUEST_ID_CHARS = 200


@dataclass(frozen=True)
class ErasureRequest:
    customer_ref: str
    request_id: str


class InvalidErasureRequest(ValueError):
    """An erasure event that cannot be used (the reason is safe to log: it holds no PII)."""


def new_request_id() -> str:
    return f"erase-{uuid.uuid4().hex}"


def parse_erasure_event(value: bytes | None, fallback_id: str) -> ErasureRequest:
    """`{"customer_ref": ..., "request_id": ...}` from the `privacy.erasure` topic.

    `request_id` is optional; without one the request is named by `fallback_id` (its topic,
    partition and offset), so a redelivered event is the same request."""
    if value is None:
        raise InvalidErasureRequest("empty message")
    try:
        payload = json.loads(value)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidErasureRequest("not JSON") from None
    if not isinstance(payload, dict):
        raise InvalidErasureRequest("not a JSON object")
    ref = payload.get("customer_ref")
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidErasureRequest("customer_ref: a non-empty string is required")
    request_id = payload.get("request_id", fallback_id)
    if request_id is None:
        request_id = fallback_id
    if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
        raise InvalidErasureRequest("request_id: a string")
    request_id = str(request_id).strip()
    if not request_id or len(request_id) > MAX_REQUEST_ID_CHARS or not request_id.isprintable():
        raise InvalidErasureRequest(f"request_id: 1 to {MAX_REQUEST_ID_CHARS} printable characters")
    return ErasureRequest(ref.strip(), request_id)
