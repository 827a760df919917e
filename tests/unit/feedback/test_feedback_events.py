from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from rag_assets.feedback.events import (
    MAX_RECORD_BYTES,
    FeedbackEvent,
    RejectReason,
    parse_feedback_record,
    reason_code,
)
from rag_assets.platform.dead_letters import DeadLetter


def parse(value: bytes | None) -> FeedbackEvent | DeadLetter:
    return parse_feedback_record("app.feedback", 3, 1207, value)


def rejected_code(value: bytes | None) -> str:
    result = parse(value)
    assert isinstance(result, DeadLetter), f"expected a dead letter, got {result!r}"
    return reason_code(result.reason)


def test_valid_record_becomes_an_event_with_its_kafka_position(record_value):
    event = parse(record_value(comment="Very helpful"))

    assert isinstance(event, FeedbackEvent)
    assert (event.topic, event.partition, event.offset) == ("app.feedback", 3, 1207)
    assert event.turn_key == ("conv-1", "t-1")
    assert event.ts == datetime(2024, 3, 15, 10, 15, tzinfo=timezone.utc)
    assert event.retrieved_ids == ("policy/changes#3", "faq/fees#1")
    assert event.latency_ms == 850.0
    assert event.comment == "Very helpful"


def test_event_is_immutable(record_value):
    event = parse(record_value())
    with pytest.raises(AttributeError):
        event.rating_up = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("rating", "rating_up", "rating_score"),
    [
        ("up", True, None),
        ("down", False, None),
        ("UP", True, None),
        (5, True, 5.0),
        (4, True, 4.0),
        (3, None, 3.0),
        (2, False, 2.0),
        (1, False, 1.0),
        (4.5, True, 4.5),
        (None, None, None),
    ],
)
def test_rating_is_normalised_into_polarity_and_score(
    record_value, rating, rating_up, rating_score
):
    event = parse(record_value(rating=rating))

    assert isinstance(event, FeedbackEvent)
    assert (event.rating_up, event.rating_score) == (rating_up, rating_score)
    assert event.is_rated is (rating is not None)


def test_optional_fields_may_be_absent(make_document):
    document = make_document()
    for field in ("rating", "comment", "customer_ref"):
        del document[field]

    event = parse(json.dumps(document).encode())

    assert isinstance(event, FeedbackEvent)
    assert (event.rating_up, event.rating_score, event.comment, event.customer_ref) == (
        None,
        None,
        None,
        None,
    )


def test_integer_turn_id_is_kept_as_text(record_value):
    event = parse(record_value(turn_id=7))
    assert isinstance(event, FeedbackEvent) and event.turn_id == "7"


def test_unknown_fields_are_ignored(record_value):
    assert isinstance(parse(record_value(client_version="2.3.1")), FeedbackEvent)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2024-03-15T10:15:00Z", datetime(2024, 3, 15, 10, 15, tzinfo=timezone.utc)),
        (
            "2024-03-15T11:15:00+01:00",
            datetime(2024, 3, 15, 10, 15, tzinfo=timezone.utc),
        ),
        (
            "2024-03-15T05:15:00.250-05:00",
            datetime(2024, 3, 15, 10, 15, 0, 250000, tzinfo=timezone.utc),
        ),
        (1710497700000, datetime(2024, 3, 15, 10, 15, tzinfo=timezone.utc)),
    ],
)
def test_timestamps_are_converted_to_utc(record_value, ts, expected):
    event = parse(record_value(ts=ts))
    assert isinstance(event, FeedbackEvent)
    assert event.ts == expected and event.ts.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    ("ts", "code"),
    [
        ("2024-03-15T10:15:00", RejectReason.NAIVE_TIMESTAMP),
        ("2024-03-15", RejectReason.NAIVE_TIMESTAMP),
        ("15/03/2024 10:15", RejectReason.BAD_TIMESTAMP),
        ("yesterday", RejectReason.BAD_TIMESTAMP),
        ("", RejectReason.BAD_TIMESTAMP),
        (
            1710497700,
            RejectReason.BAD_TIMESTAMP,
        ),  # epoch seconds sent as milliseconds: 1970
        (1710497700000.5, RejectReason.BAD_TIMESTAMP),
        (True, RejectReason.BAD_TIMESTAMP),
        (10**30, RejectReason.BAD_TIMESTAMP),
        ("2150-01-01T00:00:00Z", RejectReason.BAD_TIMESTAMP),
        ("２０２４-03-15T10:15:00Z", RejectReason.BAD_TIMESTAMP),
    ],
)
def test_bad_timestamps_are_dead_lettered(record_value, ts, code):
    assert rejected_code(record_value(ts=ts)) == code


@pytest.mark.parametrize(
    ("rating", "code"),
    [
        (0, RejectReason.RATING_OUT_OF_RANGE),
        (6, RejectReason.RATING_OUT_OF_RANGE),
        (-1, RejectReason.RATING_OUT_OF_RANGE),
        (5.01, RejectReason.RATING_OUT_OF_RANGE),
        ("meh", RejectReason.BAD_RATING),
        ("5", RejectReason.BAD_RATING),
        (True, RejectReason.BAD_RATING),
        ([5], RejectReason.BAD_RATING),
    ],
)
def test_bad_ratings_are_dead_lettered(record_value, rating, code):
    assert rejected_code(record_value(rating=rating)) == code


@pytest.mark.parametrize(
    "field",
    [
        "conversation_id",
        "turn_id",
        "ts",
        "question",
        "answer",
        "model_id",
        "latency_ms",
        "retrieved_ids",
    ],
)
def test_missing_required_field_is_dead_lettered(make_document, field):
    document = make_document()
    del document[field]
    result = parse(json.dumps(document).encode())

    assert isinstance(result, DeadLetter)
    assert result.reason == f"missing_field: {field}"


@pytest.mark.parametrize("field", ["conversation_id", "ts", "answer", "retrieved_ids"])
def test_null_required_field_is_dead_lettered(record_value, field):
    assert rejected_code(record_value(**{field: None})) == RejectReason.MISSING_FIELD


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("conversation_id", 17, RejectReason.WRONG_TYPE),
        ("conversation_id", "   ", RejectReason.EMPTY_FIELD),
        ("conversation_id", "c" * 300, RejectReason.FIELD_TOO_LONG),
        ("turn_id", -1, RejectReason.WRONG_TYPE),
        ("turn_id", 1.5, RejectReason.WRONG_TYPE),
        ("model_id", "", RejectReason.EMPTY_FIELD),
        ("question", ["a"], RejectReason.WRONG_TYPE),
        ("answer", 42, RejectReason.WRONG_TYPE),
        ("comment", {"text": "x"}, RejectReason.WRONG_TYPE),
        ("customer_ref", 1001, RejectReason.WRONG_TYPE),
        ("latency_ms", "850", RejectReason.WRONG_TYPE),
        ("latency_ms", True, RejectReason.WRONG_TYPE),
        ("latency_ms", -5, RejectReason.LATENCY_OUT_OF_RANGE),
        ("latency_ms", 10**12, RejectReason.LATENCY_OUT_OF_RANGE),
        ("retrieved_ids", "doc-1", RejectReason.WRONG_TYPE),
        ("retrieved_ids", ["doc-1", 2], RejectReason.WRONG_TYPE),
        ("retrieved_ids", ["doc-1", ""], RejectReason.EMPTY_FIELD),
    ],
)
def test_wrong_types_and_values_are_dead_lettered(record_value, field, value, code):
    assert rejected_code(record_value(**{field: value})) == code


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("conversation_id", "conv\x00-1"),
        ("conversation_id", "conv\n1"),
        ("turn_id", "t\u200b1"),  # zero-width space makes two ids look equal
        ("model_id", "model\u202ea"),  # right-to-left override
        ("question", "hello\x00world"),
        ("answer", "bell\x07"),
        ("comment", "escape \x1b[31m red"),
        ("comment", "c1 control \x85"),
        ("retrieved_ids", ["doc\t1"]),
    ],
)
def test_control_characters_where_they_do_not_belong_are_dead_lettered(record_value, field, value):
    assert rejected_code(record_value(**{field: value})) == RejectReason.CONTROL_CHARACTER


def test_free_text_keeps_newlines_tabs_and_emoji_sequences(record_value):
    answer = "Steps:\n\t1. Open Manage Booking\r\n\t2. Pay 👩\u200d✈️"
    event = parse(record_value(answer=answer))
    assert isinstance(event, FeedbackEvent) and event.answer == answer


def test_lone_surrogate_is_dead_lettered():
    value = (
        b'{"conversation_id":"c","turn_id":"t","ts":"2024-03-15T10:15:00Z","question":"\\ud800",'
        b'"answer":"a","model_id":"m","latency_ms":1,"retrieved_ids":[]}'
    )
    assert rejected_code(value) == RejectReason.INVALID_UNICODE


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, RejectReason.TOMBSTONE),
        (b"", RejectReason.MALFORMED_JSON),
        (b"{not json", RejectReason.MALFORMED_JSON),
        (b'{"a": 1} trailing', RejectReason.MALFORMED_JSON),
        (b"[" * 100_000, RejectReason.MALFORMED_JSON),
        (b'{"latency_ms": NaN}', RejectReason.MALFORMED_JSON),
        (b'{"latency_ms": Infinity}', RejectReason.MALFORMED_JSON),
        (b"\xef\xbb\xbf{}", RejectReason.MALFORMED_JSON),
        (b'{"question": "caf\xe9"}', RejectReason.NOT_UTF8),
        (b"\xff\xfe{\x00}\x00", RejectReason.NOT_UTF8),
        (b"[]", RejectReason.NOT_AN_OBJECT),
        (b'"a string"', RejectReason.NOT_AN_OBJECT),
        (b"null", RejectReason.NOT_AN_OBJECT),
        (b'{"rating": "up", "rating": "down"}', RejectReason.DUPLICATE_KEY),
    ],
)
def test_undecodable_values_are_dead_lettered(value, code):
    assert rejected_code(value) == code


def test_dead_letter_keeps_payload_position_and_source(record_value):
    value = record_value(rating=9)
    letter = parse(value)

    assert isinstance(letter, DeadLetter)
    assert letter == DeadLetter(
        source="feedback",
        reason="rating_out_of_range: rating 9 is outside 1..5",
        payload=value,
        topic="app.feedback",
        partition=3,
        offset=1207,
        customer_ref="cust-42",  # the turn's reference: what ties the letter to a person
    )


def test_oversized_record_is_dead_lettered_without_its_payload(record_value):
    value = record_value(answer="x" * MAX_RECORD_BYTES)
    letter = parse(value)

    assert isinstance(letter, DeadLetter)
    assert reason_code(letter.reason) == RejectReason.OVERSIZED
    assert letter.payload is None and letter.offset == 1207


def test_record_just_under_the_limit_is_accepted(record_value):
    padding = MAX_RECORD_BYTES - len(record_value(answer=""))
    assert isinstance(parse(record_value(answer="x" * padding)), FeedbackEvent)


def test_character_fast_path_agrees_with_the_exact_rules():
    """`isprintable()` short-cuts the checks; it must accept exactly what the rules accept."""
    import random
    import re
    import unicodedata

    from rag_assets.feedback import events

    def exact(value: str, identifier: bool) -> bool:
        if re.search("[\ud800-\udfff]", value):
            return False
        if identifier:
            return not any(unicodedata.category(c) in ("Cc", "Cf") for c in value)
        return not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", value)

    pool = ["a", "Z", "9", " ", "é", "中", "\t", "\n", "\r", "\x00", "\x1f", "\x7f", "\x85",
            "\u00a0", "\u00ad", "\u200b", "\u2028", "\u2029", "\ufeff", "\ue000", "\U000e0001",
            "\ud800", "\udfff", "\u0378", "\U0001f600"]
    rng = random.Random(3)
    for _ in range(3000):
        value = "".join(rng.choice(pool) for _ in range(rng.randint(0, 6)))
        for identifier in (True, False):
            try:
                events._check_characters("f", value, identifier=identifier)
                accepted = True
            except events._Rejected:
                accepted = False
            assert accepted == exact(value, identifier), (value, identifier)
