"""Property: the S3 notification parser is total — any message gives object events and dead
letters, never an exception."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag_assets.knowledge.document_diff import ParsedNotification, parse_event_notification
from tests.fuzz_inputs import encode, json_values, mutated_messages, notification_value

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(parsed: ParsedNotification):
    assert isinstance(parsed, ParsedNotification)
    for letter in parsed.dead_letters:
        assert letter.source == "documents" and letter.reason
        assert "parser failed" not in letter.reason  # the guard's last resort
        assert (letter.topic, letter.partition, letter.offset) == ("kb.s3-events", 0, 9)
    for event in parsed.events:
        assert event.key.startswith("knowledge-base/")


@FUZZ
@given(mutated_messages("notification"))
def test_any_mutation_of_a_valid_notification_is_events_or_dead_letters(value):
    _check(parse_event_notification(value, "kb", "knowledge-base/", topic="kb.s3-events",
                                    partition=0, offset=9))


@FUZZ
@given(st.one_of(st.binary(max_size=300), json_values.map(encode)))
def test_any_bytes_or_json_is_events_or_dead_letters(value):
    _check(parse_event_notification(value, "kb", "knowledge-base/", topic="kb.s3-events",
                                    partition=0, offset=9))


def test_an_etag_that_is_not_a_string_is_a_dead_letter():
    message = notification_value()
    message["Records"][0]["s3"]["object"]["eTag"] = {"not": "a string"}
    parsed = parse_event_notification(encode(message), "kb", "knowledge-base/")
    assert parsed.events == []
    assert [letter.reason for letter in parsed.dead_letters] == [
        "record 0: s3.object.eTag is not a string"]
