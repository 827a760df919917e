"""Property: the CDC parser is total — for any record it returns a ChangeEvent or a dead letter
with a reason and the record's position, and never raises (a raise stalled the source). The
reason is the parser's own, naming what is wrong: the item guard's generic "parser failed"
is a last resort, and a generated input reaching it is a gap in the parser."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag_assets.customers.cdc_events import ChangeEvent, parse_cdc_record
from rag_assets.platform.dead_letters import DeadLetter
from tests.fuzz_inputs import CDC_TOPIC, encode, json_values, mutated_messages

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
keys = st.one_of(st.none(), st.just(b'{"id": 1001}'), st.binary(max_size=40),
                 json_values.map(encode))


def _check(result, value):
    assert isinstance(result, (ChangeEvent, DeadLetter))
    if isinstance(result, DeadLetter):
        assert result.source == "cdc" and result.reason
        assert "parser failed" not in result.reason
        assert (result.topic, result.partition, result.offset) == (CDC_TOPIC, 3, 42)
        assert result.payload in (value, None)
    else:
        assert (result.system, result.table) == ("crm", "customers")
        assert result.position == (CDC_TOPIC, 3, 42)


@FUZZ
@given(keys, mutated_messages("cdc"))
def test_any_mutation_of_a_valid_message_is_an_event_or_a_dead_letter(key, value):
    _check(parse_cdc_record(CDC_TOPIC, 3, 42, key, value), value)


@FUZZ
@given(keys, st.one_of(st.none(), st.binary(max_size=300), json_values.map(encode)))
def test_any_bytes_or_json_is_an_event_or_a_dead_letter(key, value):
    _check(parse_cdc_record(CDC_TOPIC, 3, 42, key, value), value)


def test_an_integer_beyond_the_conversion_limit_in_the_key_is_a_dead_letter():
    # This key stalled Customer 360: json.loads raised ValueError outside the parser's rejections.
    result = parse_cdc_record(CDC_TOPIC, 3, 42, b'{"id": ' + b"9" * 5000 + b"}",
                              b'{"op": "c", "after": {"id": 1}}')
    assert isinstance(result, DeadLetter)
    assert result.reason.startswith("key is JSON that cannot be decoded: Exceeds the limit (4300")


def test_an_op_of_the_wrong_type_is_a_dead_letter():
    result = parse_cdc_record(CDC_TOPIC, 3, 42, b'{"id": 1}', b'{"op": ["c"], "after": {"id": 1}}')
    assert isinstance(result, DeadLetter)
    assert result.reason == "unknown op ['c']; expected one of c, u, d, r, t"


def test_a_number_beyond_a_double_is_a_dead_letter_not_a_silent_null():
    result = parse_cdc_record(CDC_TOPIC, 3, 42, b'{"id": 1}',
                              b'{"op": "c", "after": {"id": 1, "points": 1e400}}')
    assert isinstance(result, DeadLetter)
    assert result.reason == "JSON number 1e400 is beyond the range of a double"


def test_a_version_beyond_64_bits_is_a_dead_letter():
    value = encode({"op": "u", "after": {"id": 1}, "source": {"ts_ms": 2**70}})
    result = parse_cdc_record(CDC_TOPIC, 3, 42, b'{"id": 1}', value)
    assert isinstance(result, DeadLetter)
    assert result.reason == "source.ts_ms is outside the 64-bit integer range"
