"""Property: the feedback parser is total — any record value gives a FeedbackEvent or a dead
letter whose reason starts with a known code, and never raises."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag_assets.feedback.events import FeedbackEvent, RejectReason, parse_feedback_record
from rag_assets.platform.dead_letters import DeadLetter
from tests.fuzz_inputs import encode, json_values, mutated_messages

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CODES = {str(code) for code in RejectReason}


def _check(result, value):
    assert isinstance(result, (FeedbackEvent, DeadLetter))
    if isinstance(result, DeadLetter):
        assert result.reason.split(":", 1)[0] in CODES
        assert not result.reason.startswith(RejectReason.UNPROCESSABLE)  # the guard's last resort
        assert (result.topic, result.partition, result.offset) == ("app.feedback", 1, 7)
        assert result.payload in (value, None)


@FUZZ
@given(mutated_messages("feedback"))
def test_any_mutation_of_a_valid_turn_is_a_turn_or_a_dead_letter(value):
    _check(parse_feedback_record("app.feedback", 1, 7, value), value)


@FUZZ
@given(st.one_of(st.none(), st.binary(max_size=300), json_values.map(encode)))
def test_any_bytes_or_json_is_a_turn_or_a_dead_letter(value):
    _check(parse_feedback_record("app.feedback", 1, 7, value), value)
