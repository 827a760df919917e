"""Any body a client can send gets the request or a 400 reason, never a server error: the HTTP
layer's parsing and the request validation, fed arbitrary JSON and bytes (Hypothesis)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag_assets.retrieval.context import ContextRequest, InvalidRequest, validate_request
from rag_assets.retrieval.http import FIELDS, parse_body
from tests.fuzz_inputs import encode, json_values

VALID = {"customer": "crm:1", "question": "Can I bring my dog?", "k": 3}


def request_or_reason(body: bytes) -> ContextRequest | str:
    try:
        params = parse_body(body)
        return validate_request(params.get("customer"), params.get("question"),
                                params.get("k", 5), params.get("mode", "hybrid"),
                                params.get("doc_keys"), params.get("answer", False),
                                params.get("personalise", True))
    except InvalidRequest as error:
        return str(error)


@settings(max_examples=400)
@given(json_values)
def test_any_json_body_is_a_request_or_a_reason(value):
    assert isinstance(request_or_reason(encode(value)), (ContextRequest, str))


@settings(max_examples=400)
@given(st.sampled_from(sorted(FIELDS)), json_values)
def test_any_value_in_any_field_is_a_request_or_a_reason(field, value):
    assert isinstance(request_or_reason(encode({**VALID, field: value})), (ContextRequest, str))


@given(st.binary(max_size=200))
def test_any_bytes_are_a_request_or_a_reason(body):
    assert isinstance(request_or_reason(body), (ContextRequest, str))


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"customer": ' + b"[" * 100_000,
                                  json.dumps({**VALID, "k": "\u00b2"}).encode()])
def test_deep_nesting_and_unicode_digits_are_reasons(body):
    assert isinstance(request_or_reason(body), str)
