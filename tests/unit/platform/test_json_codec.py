"""`json_codec` decodes and encodes exactly as the standard library does, faster where it can."""

import json

import pytest

from rag_assets.platform import json_codec

DOCUMENTS = [
    '{"a": 1, "b": [true, false, null], "c": "Zoë \\u00e9 \\ud83d\\ude00"}',
    '{"points": 9223372036854775807, "below": -9223372036854775808}',
    '{"id": 123456789012345678901234567890}',  # beyond 64 bits: orjson would give a float
    '{"tiny": 5e-324, "ratio": 0.1, "neg0": -0.0, "e": 1E5}',
    '{"huge": 1e400}',  # a double overflows: json gives inf, orjson refuses
    '{"lone": "\\ud800"}',  # a lone surrogate: json accepts it, orjson refuses
    '{"a": 1, "a": 2}',
    '[]', '"text"', '0',
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_loads_equals_the_standard_library(text):
    expected = json.loads(text)
    for data in (text, text.encode()):
        got = json_codec.loads(data)
        assert repr(got) == repr(expected)  # repr: tells 1 from 1.0 and keeps nan comparable


def _refuse(data):
    raise ValueError("fallback")


@pytest.mark.parametrize("text", ['{"x": NaN}', '{"a": 1} trailing', '', '\ufeff{}'])
def test_what_orjson_rejects_is_decided_by_the_fallback(text):
    with pytest.raises(ValueError, match="fallback"):
        json_codec.loads(text, fallback=_refuse)


def test_long_digit_runs_are_read_by_the_fallback_even_when_orjson_could():
    seen = []
    json_codec.loads('{"phone": "+4412345678901234567890"}', fallback=lambda d: seen.append(d))
    assert seen


@pytest.mark.parametrize("value", [
    {"name": "Zoë", "n": [1, 2.5, None, True]}, {"big": 2**70}, {7: "an int key"}, "s", [],
])
def test_dumps_encodes_the_same_value_as_the_standard_library(value):
    assert json.loads(json_codec.dumps(value)) == json.loads(json.dumps(value))


def test_dumps_still_refuses_what_is_not_json():
    with pytest.raises(TypeError):
        json_codec.dumps({"not json": object()})


@pytest.mark.parametrize("value", [
    {"b": 1, "a": "Zoë"}, {"big": 2**70, "a": None}, {7: "an int key", 3: [1.5]},
])
def test_dumps_for_digest_is_one_text_per_value_whatever_the_key_order(value):
    reordered = dict(reversed(list(value.items())))
    assert json_codec.dumps_for_digest(value) == json_codec.dumps_for_digest(reordered)
    assert json.loads(json_codec.dumps_for_digest(value)) == json.loads(json.dumps(value))


def test_dumps_for_digest_tells_different_values_apart():
    texts = {json_codec.dumps_for_digest(v) for v in ({"a": 1}, {"a": 1.0}, {"a": "1"}, {"a": [1]})}
    assert len(texts) == 4
