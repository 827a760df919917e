"""Validation and bundle building of `context`, without services."""

from datetime import UTC, datetime, timedelta

import pytest

from rag_assets.knowledge.indexing import doc_keys_filter
from rag_assets.knowledge.search import SearchHit, SearchMode
from rag_assets.retrieval.answer import BedrockAnswerer, build_prompt
from rag_assets.retrieval.context import (
    InvalidRequest,
    build_bundle,
    validate_request,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def hit(doc_key="kb/a.md", embedded_at=NOW - timedelta(days=3)):
    return SearchHit(chunk_id=f"{doc_key}#0", doc_key=doc_key, doc_version="etag-1", chunk_no=0,
                     heading="Baggage", text="One cabin bag.", score=0.9, run_id="run-1",
                     embedded_at=embedded_at, embedding_model="m")


def test_valid_requests_are_normalised():
    request = validate_request("  alice@example.org ", " Cabin bags?\n", "3", "vector")
    assert (request.customer_ref, request.question, request.k, request.mode) == (
        "alice@example.org", "Cabin bags?", 3, SearchMode.VECTOR)


@pytest.mark.parametrize("kwargs", [
    {"customer_ref": None, "question": "q"},
    {"customer_ref": "x" * 321, "question": "q"},
    {"customer_ref": "a\tb", "question": "q"},
    {"customer_ref": "a", "question": ""},
    {"customer_ref": "a", "question": "q" * 2001},
    {"customer_ref": "a", "question": "q\x07"},
    {"customer_ref": "a", "question": "q", "k": 51},
    {"customer_ref": "a", "question": "q", "k": 2.5},
    {"customer_ref": "a", "question": "q", "mode": "DROP TABLE"},
    {"customer_ref": "a", "question": "q", "doc_keys": "kb/a.md"},
    {"customer_ref": "a", "question": "q", "doc_keys": [""]},
    {"customer_ref": "a", "question": "q", "answer": "yes"},
])
def test_invalid_requests_are_refused(kwargs):
    with pytest.raises(InvalidRequest):
        validate_request(**kwargs)


def test_doc_key_filters_escape_quotes():
    assert doc_keys_filter(["kb/o'brien.md", "kb/a.md"]) == (
        "doc_key IN ('kb/a.md', 'kb/o''brien.md')")


def test_bundle_items_carry_provenance_and_age():
    profile = {"customer_id": "cus_1", "golden": {"given_name": {
        "value": "Alice", "source": "crm.customers:1", "cdc_position": "cdc.crm.customers/0/4"}},
        "profile_version": 3, "updated_at": (NOW - timedelta(seconds=30)).isoformat()}
    request = validate_request("cus_1", "bags?", 5)
    indexed = {"kb/a.md": NOW - timedelta(seconds=60)}
    bundle = build_bundle(request, profile, [hit(), hit("kb/b.md")], indexed, NOW)
    customer = bundle["customer"]
    assert customer["customer_id"] == "cus_1" and customer["age_seconds"] == 30
    assert customer["provenance"] == {"profile_version": 3,
                                      "cdc_positions": ["cdc.crm.customers/0/4"],
                                      "note": "each golden field names its source record and CDC position"}
    assert "profile_version" not in customer["profile"]
    first, second = bundle["chunks"]
    assert first["provenance"] == {"doc_key": "kb/a.md", "doc_version": "etag-1", "chunk_no": 0,
                                   "chunk_id": "kb/a.md#0", "run_id": "run-1",
                                   "embedding_model": "m"}
    assert first["age_seconds"] == 60  # since the document version was indexed
    assert second["age_seconds"] == 3 * 86400  # no registry time: since embedding
    assert [c["rank"] for c in bundle["chunks"]] == [1, 2]


def test_no_customer_gives_an_empty_customer_item():
    bundle = build_bundle(validate_request("nobody", "q"), None, [], {}, NOW)
    assert bundle["customer"] is None and bundle["customer_found"] is False


class FakeBedrock:
    def __init__(self):
        self.calls = []

    def converse(self, **kwargs):
        self.calls.append(kwargs)
        return {"output": {"message": {"content": [{"text": "Up to 8 kg [1]."}]}},
                "stopReason": "end_turn"}


def test_answer_generation_sends_the_bundle_to_bedrock_converse():
    bundle = build_bundle(validate_request("cus_1", "How heavy?"), None, [hit()], {}, NOW)
    client = FakeBedrock()
    answer = BedrockAnswerer("model-x", client=client).answer(bundle)
    assert answer == {"model_id": "model-x", "text": "Up to 8 kg [1].", "stop_reason": "end_turn"}
    (call,) = client.calls
    assert call["modelId"] == "model-x"
    assert "[1] (kb/a.md) Baggage" in build_prompt(bundle)
