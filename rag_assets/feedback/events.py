"""Parsing `app.feedback` records into `FeedbackEvent`s.

One Kafka record value is one JSON object describing one conversation turn:

    conversation_id  str, non-empty                      required
    turn_id          str (non-empty) or int >= 0         required; an int is kept as its decimal str
    customer_ref     str or null                         optional; null or absent = anonymous
    ts               event time, see below               required
    question         str (may be empty)                  required
    answer           str (may be empty)                  required
    model_id         str, non-empty                      required
    latency_ms       number, 0 <= x <= 1 day             required
    retrieved_ids    list of non-empty str               required; [] = answered without context
    rating           "up" | "down" | number 1..5 | null  optional
    comment          str or null                         optional

Unknown keys are ignored so producers can add fields without breaking the pipeline.

Timestamps. `ts` is either an ISO-8601 string that carries a zone (`Z` or `±HH:MM`) or an
integer count of milliseconds since the Unix epoch (UTC). A naive ISO string (no zone) is
rejected rather than guessed as UTC: a producer sending local wall-clock time would silently
shift every window it touches. Either form must fall in [2000-01-01, 2100-01-01) UTC, which
also catches epoch *seconds* sent where milliseconds are expected (they land in 1970).

Ratings. "up"/"down" (case-insensitive) are thumbs: `rating_up` is True/False and
`rating_score` is None — a thumb is not turned into a fake 5 or 1 so the mean of scores stays a
mean of what users actually scored. A number in [1, 5] is a score: `rating_score` holds it and
`rating_up` is derived (>= 4 True, <= 2 False, in between None) so the thumbs-up rate can count both
kinds of rating. JSON booleans are not ratings.

Text. Identifiers reject every control or format character (category Cc/Cf); free text
(question, answer, comment) allows tab, newline and carriage return only among controls. A lone
surrogate (valid JSON `\\ud800`, but not encodable as UTF-8) and NUL are rejected everywhere:
neither Parquet nor PostgreSQL text could store them.

A record that breaks any rule comes back as a `DeadLetter` (source "feedback") whose reason is
`"<code>: <detail>"`, the code being one of `RejectReason`.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from rag_assets.platform.dead_letters import DeadLetter
from rag_assets.platform.item_guard import failure_reason

DEAD_LETTER_SOURCE = "feedback"
MAX_RECORD_BYTES = 256 * 1024
MAX_ID_CHARS = 256
MAX_LATENCY_MS = 24 * 60 * 60 * 1000
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST_EVENT_TIME = datetime(2100, 1, 1, tzinfo=timezone.utc)
MIN_SCORE = 1.0
MAX_SCORE = 5.0

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_FREE_TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tab, LF, CR allowed
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class RejectReason(StrEnum):
    TOMBSTONE = "tombstone"
    OVERSIZED = "oversized"
    NOT_UTF8 = "not_utf8"
    MALFORMED_JSON = "malformed_json"
    DUPLICATE_KEY = "duplicate_key"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    EMPTY_FIELD = "empty_field"
    FIELD_TOO_LONG = "field_too_long"
    CONTROL_CHARACTER = "control_character"
    INVALID_UNICODE = "invalid_unicode"
    BAD_TIMESTAMP = "bad_timestamp"
    NAIVE_TIMESTAMP = "naive_timestamp"
    BAD_RATING = "bad_rating"
    RATING_OUT_OF_RANGE = "rating_out_of_range"
    LATENCY_OUT_OF_RANGE = "latency_out_of_range"
    UNPROCESSABLE = "unprocessable"  # the guard's reason: handling this event raised


@dataclass(frozen=True)
class FeedbackEvent:
    """One parsed conversation turn and where it was read from."""

    conversation_id: str
    turn_id: str
    customer_ref: str | None
    ts: datetime  # event time, timezone-aware UTC
    question: str
    answer: str
    model_id: str
    latency_ms: float
    retrieved_ids: tuple[str, ...]
    rating_up: bool | None
    rating_score: float | None
    comment: str | None
    topic: str
    partition: int
    offset: int

    @property
    def turn_key(self) -> tuple[str, str]:
        """The identity of a turn; redeliveries share it."""
        return (self.conversation_id, self.turn_id)

    @property
    def is_rated(self) -> bool:
        return self.rating_up is not None or self.rating_score is not None


class _Rejected(Exception):
    def __init__(self, code: RejectReason, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


def reason_code(reason: str) -> str:
    """The `RejectReason` code of a dead-letter reason, for counting by kind."""
    return reason.split(":", 1)[0]


def parse_feedback_record(
    topic: str, partition: int, offset: int, value: bytes | None
) -> FeedbackEvent | DeadLetter:
    """Parse one `app.feedback` record value; never raises on bad input."""
    document = None
    try:
        document = _decode_document(value)
        return _event_from_document(document, topic, partition, offset)
    except _Rejected as rejected:
        # An oversized payload is not kept: the record can still be re-read from its offset.
        payload = None if rejected.code is RejectReason.OVERSIZED else value
        reason = str(rejected)
    except Exception as error:  # noqa: BLE001 — input nobody foresaw: a dead letter, not a stall
        payload = value
        reason = f"{RejectReason.UNPROCESSABLE}: {failure_reason('feedback parser', error)}"
    return DeadLetter(
        source=DEAD_LETTER_SOURCE,
        reason=reason,
        payload=payload,
        topic=topic,
        partition=partition,
        offset=offset,
        customer_ref=_customer_ref_of(document),
    )


def _customer_ref_of(document: dict[str, Any] | None) -> str | None:
    """The reference of a rejected turn, when it has one (it ties its dead letter to a person)."""
    ref = document.get("customer_ref") if isinstance(document, dict) else None
    return ref if isinstance(ref, str) else None


def _decode_document(value: bytes | None) -> dict[str, Any]:
    if value is None:
        raise _Rejected(RejectReason.TOMBSTONE, "record has a null value")
    if len(value) > MAX_RECORD_BYTES:
        raise _Rejected(
            RejectReason.OVERSIZED,
            f"{len(value)} bytes exceeds the {MAX_RECORD_BYTES}-byte limit",
        )
    try:
        text = bytes(value).decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Rejected(RejectReason.NOT_UTF8, f"invalid byte at position {error.start}") from None
    try:
        document = json.loads(
            text,
            object_pairs_hook=_object_without_duplicate_keys,
            parse_constant=_reject_constant,
        )
    except _Rejected:
        raise
    except (ValueError, RecursionError) as error:
        raise _Rejected(RejectReason.MALFORMED_JSON, _short(str(error))) from None
    if not isinstance(document, dict):
        raise _Rejected(RejectReason.NOT_AN_OBJECT, f"top-level JSON is {_json_type(document)}")
    return document


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) == len(pairs):  # no key repeated (the common case, decided in C)
        return document
    document = {}
    for key, value in pairs:
        if key in document:
            # json would keep the last one; two ratings for one turn have no right answer.
            raise _Rejected(RejectReason.DUPLICATE_KEY, f"key {key!r} appears more than once")
        document[key] = value
    return document


def _reject_constant(name: str) -> float:
    raise _Rejected(RejectReason.MALFORMED_JSON, f"{name} is not valid JSON")


def _event_from_document(
    document: dict[str, Any], topic: str, partition: int, offset: int
) -> FeedbackEvent:
    rating_up, rating_score = _rating(document.get("rating"))
    return FeedbackEvent(
        conversation_id=_field(document, "conversation_id", _identifier),
        turn_id=_turn_id(document),
        customer_ref=_optional_field(document, "customer_ref", _identifier),
        ts=_event_time(_required(document, "ts")),
        question=_field(document, "question", _free_text),
        answer=_field(document, "answer", _free_text),
        model_id=_field(document, "model_id", _identifier),
        latency_ms=_latency(_required(document, "latency_ms")),
        retrieved_ids=_retrieved_ids(_required(document, "retrieved_ids")),
        rating_up=rating_up,
        rating_score=rating_score,
        comment=_optional_field(document, "comment", _free_text),
        topic=topic,
        partition=partition,
        offset=offset,
    )


def _required(document: dict[str, Any], field: str) -> Any:
    if field not in document:
        raise _Rejected(RejectReason.MISSING_FIELD, field)
    if document[field] is None:
        raise _Rejected(RejectReason.MISSING_FIELD, f"{field} is null")
    return document[field]


def _field(document: dict[str, Any], field: str, check: Callable[[str, Any], str]) -> str:
    return check(field, _required(document, field))


def _optional_field(document: dict[str, Any], field: str,
                    check: Callable[[str, Any], str]) -> str | None:
    value = document.get(field)
    return None if value is None else check(field, value)


def _string(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _Rejected(
            RejectReason.WRONG_TYPE,
            f"{field} must be a string, got {_json_type(value)}",
        )
    return value


def _identifier(field: str, value: Any) -> str:
    if not _string(field, value).strip():
        raise _Rejected(RejectReason.EMPTY_FIELD, field)
    if len(value) > MAX_ID_CHARS:
        raise _Rejected(RejectReason.FIELD_TOO_LONG, f"{field} has {len(value)} characters")
    _check_characters(field, value, identifier=True)
    return value


def _free_text(field: str, value: Any) -> str:
    _check_characters(field, _string(field, value), identifier=False)
    return value


def _turn_id(document: dict[str, Any]) -> str:
    value = _required(document, "turn_id")
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise _Rejected(RejectReason.WRONG_TYPE, "turn_id must not be negative")
        return str(value)
    return _identifier("turn_id", value)


def _check_characters(field: str, value: str, *, identifier: bool) -> None:
    # Fast path: a printable string has no character of category Cc, Cf or Cs (`isprintable`
    # is False for every "Other" and "Separator" except the ASCII space), so it breaks no rule
    # below. Anything else (including tab/newline in free text) takes the exact checks.
    if value.isprintable():
        return
    if surrogate := _SURROGATE.search(value):
        raise _Rejected(
            RejectReason.INVALID_UNICODE, f"lone surrogate in {field} at {surrogate.start()}"
        )
    control = (_CONTROL if identifier else _FREE_TEXT_CONTROL).search(value)
    position = control.start() if control else None
    if position is None and identifier:
        position = next(
            (i for i, char in enumerate(value) if unicodedata.category(char) == "Cf"), None
        )
    if position is not None:
        raise _Rejected(
            RejectReason.CONTROL_CHARACTER, f"U+{ord(value[position]):04X} in {field} at {position}"
        )


def _event_time(value: Any) -> datetime:
    if isinstance(value, bool):
        raise _Rejected(RejectReason.BAD_TIMESTAMP, "ts must be an ISO-8601 string or epoch ms")
    if isinstance(value, int):
        moment = _from_epoch_ms(value)
    elif isinstance(value, str):
        moment = _from_iso(value)
    else:
        raise _Rejected(
            RejectReason.BAD_TIMESTAMP,
            f"ts must be an ISO-8601 string or epoch ms, got {_json_type(value)}",
        )
    if not EARLIEST_EVENT_TIME <= moment < LATEST_EVENT_TIME:
        raise _Rejected(
            RejectReason.BAD_TIMESTAMP, f"ts {moment.isoformat()} is outside 2000..2100"
        )
    return moment


def _from_epoch_ms(value: int) -> datetime:
    try:
        return _EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        raise _Rejected(RejectReason.BAD_TIMESTAMP, f"epoch ms {value} is out of range") from None


def _from_iso(value: str) -> datetime:
    if not value.isascii():
        raise _Rejected(RejectReason.BAD_TIMESTAMP, "ts must be ASCII")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _Rejected(RejectReason.BAD_TIMESTAMP, f"not ISO-8601: {_short(value)!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise _Rejected(RejectReason.NAIVE_TIMESTAMP, f"ts {value!r} has no zone offset")
    return moment.astimezone(timezone.utc)


def _latency(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Rejected(
            RejectReason.WRONG_TYPE,
            f"latency_ms must be a number, got {_json_type(value)}",
        )
    if not 0 <= value <= MAX_LATENCY_MS:
        raise _Rejected(RejectReason.LATENCY_OUT_OF_RANGE, f"latency_ms {value}")
    return float(value)


def _retrieved_ids(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Rejected(
            RejectReason.WRONG_TYPE,
            f"retrieved_ids must be a list, got {_json_type(value)}",
        )
    return tuple(
        _identifier(f"retrieved_ids[{index}]", item) for index, item in enumerate(value)
    )


def _rating(value: Any) -> tuple[bool | None, float | None]:
    if value is None:
        return None, None
    if isinstance(value, str):
        thumb = value.strip().lower()
        if thumb == "up":
            return True, None
        if thumb == "down":
            return False, None
        raise _Rejected(RejectReason.BAD_RATING, f"rating {_short(value)!r} is not up/down or 1..5")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Rejected(
            RejectReason.BAD_RATING,
            f"rating must be up/down or 1..5, got {_json_type(value)}",
        )
    score = float(value)
    if not (math.isfinite(score) and MIN_SCORE <= score <= MAX_SCORE):
        raise _Rejected(RejectReason.RATING_OUT_OF_RANGE, f"rating {value} is outside 1..5")
    return _score_polarity(score), score


def _score_polarity(score: float) -> bool | None:
    if score >= 4:
        return True
    if score <= 2:
        return False
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
