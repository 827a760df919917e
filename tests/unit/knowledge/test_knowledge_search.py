from datetime import UTC, datetime

import pytest

from rag_assets.knowledge.chunk_store import (
    build_document_rows,
    open_chunk_table,
    plan_document_update,
    replace_document,
)
from rag_assets.knowledge.chunking import chunk_document
from rag_assets.knowledge.parsing import parse_document
from rag_assets.knowledge.search import (
    SearchHit,
    SearchMode,
    reciprocal_rank_fusion,
    search_chunks,
    table_statistics,
)

DOCUMENTS = {
    "kb/baggage.md": b"# Baggage\n\nEach passenger may bring one cabin bag weighing up to 8 kg. A checked bag costs 30 euros.",
    "kb/refunds.md": b"# Refunds\n\nRefunds are paid to the original card within seven days of the request.",
    "kb/lounges.md": b"# Lounges\n\nGold members get lounge access before long-haul flights.",
    "kb/pets.md": b"# Pets\n\nSmall dogs and cats may travel in the cabin in an approved carrier.",
}


@pytest.fixture(scope="module")
def knowledge_table(minilm, tmp_path_factory):
    table = open_chunk_table(str(tmp_path_factory.mktemp("lance")), minilm.dimension)
    for number, (key, body) in enumerate(DOCUMENTS.items()):
        chunks = chunk_document(
            parse_document(key, body), count_tokens=minilm.count_tokens
        )
        plan = plan_document_update([], chunks, minilm.model_id)
        vectors = minilm.embed([chunk.embedding_text for chunk in plan.to_embed])
        rows = build_document_rows(
            key, f"etag-{number}", plan, vectors, minilm.model_id, f"run-{number}"
        )
        replace_document(table, key, rows)
    return table


@pytest.mark.parametrize("mode", list(SearchMode))
def test_each_mode_finds_the_relevant_policy_with_provenance(
    knowledge_table, minilm, mode
):
    question = "How long does a refund to my card take?"
    hits = search_chunks(knowledge_table, minilm, question, k=2, mode=mode)
    assert hits, mode
    top = hits[0]
    assert top.doc_key == "kb/refunds.md"
    assert (top.doc_version, top.chunk_no, top.run_id) == ("etag-1", 0, "run-1")
    assert top.embedding_model == minilm.model_id
    assert isinstance(top.embedded_at, datetime) and top.embedded_at.tzinfo is not None
    assert "original card" in top.text and top.heading == "Refunds"
    assert [hit.score for hit in hits] == sorted(
        (hit.score for hit in hits), reverse=True
    )


def test_vector_scores_are_cosine_similarities(knowledge_table, minilm):
    hits = search_chunks(
        knowledge_table, minilm, "How heavy can my hand luggage be?", k=4, mode="vector"
    )
    assert hits[0].doc_key == "kb/baggage.md"
    assert all(-1.0 <= hit.score <= 1.0 for hit in hits)
    assert len(hits) == 4


def test_a_filter_restricts_the_search(knowledge_table, minilm):
    hits = search_chunks(
        knowledge_table,
        minilm,
        "cabin",
        k=5,
        mode="hybrid",
        where="doc_key = 'kb/pets.md'",
    )
    assert {hit.doc_key for hit in hits} == {"kb/pets.md"}


def test_blank_text_query_returns_nothing(knowledge_table, minilm):
    assert search_chunks(knowledge_table, minilm, "   ", k=3, mode="text") == []


def _hit(chunk_id):
    return SearchHit(
        chunk_id,
        "kb/x.md",
        "v",
        0,
        "",
        "",
        0.0,
        "run",
        datetime(2025, 1, 1, tzinfo=UTC),
        "m",
    )


def test_reciprocal_rank_fusion_rewards_agreement():
    vector = [_hit("a"), _hit("b"), _hit("c")]
    text = [_hit("d"), _hit("b"), _hit("e")]
    fused = reciprocal_rank_fusion([vector, text], k=4)
    assert [hit.chunk_id for hit in fused] == [
        "b",
        "a",
        "d",
        "c",
    ]  # a/d tie, broken by id
    assert fused[0].score == pytest.approx(2 / 62)
    assert fused[1].score == pytest.approx(1 / 61)


# --------------------------------------------------------------------------------------------
# Determinism: the ranking is a function of the live rows and the question only
# --------------------------------------------------------------------------------------------

QUESTIONS = ["How heavy can my cabin bag be?", "refund to my card", "lounge access for Gold",
             "Can my dog travel with me?", "checked bag cost euros"]
EDITED = {
    "kb/baggage.md": b"# Baggage\n\n## Cabin\n\nEach passenger may bring one cabin bag weighing up to 10 kg.\n\n## Checked\n\nA checked bag costs 35 euros; a second checked bag costs 50 euros.",
    "kb/refunds.md": b"# Refunds\n\nRefunds are paid to the original card within ten days. Vouchers are refunded on request.",
}


def _index(table, minilm, documents, version):
    for key, body in documents.items():
        chunks = chunk_document(parse_document(key, body), count_tokens=minilm.count_tokens)
        plan = plan_document_update([], chunks, minilm.model_id)
        vectors = minilm.embed([chunk.embedding_text for chunk in plan.to_embed])
        replace_document(table, key, build_document_rows(
            key, version, plan, vectors, minilm.model_id, "run"))


def _rankings(table, minilm):
    table_statistics.clear()  # recount from the live rows, as a new process would
    return {(question, mode): [(hit.chunk_id, round(hit.score, 9)) for hit in
                               search_chunks(table, minilm, question, k=6, mode=mode)]
            for question in QUESTIONS for mode in SearchMode}


def _lance_bm25(table, question):
    rows = table.search(question, query_type="fts", fts_columns="text").select(
        ["chunk_id", "_score"]).limit(10).to_list()
    return {row["chunk_id"]: round(row["_score"], 6) for row in rows}


def test_rankings_do_not_depend_on_compaction_index_rebuilds_or_history(minilm, tmp_path):
    from lancedb.index import FTS

    from rag_assets.knowledge.chunk_store import delete_document

    table = open_chunk_table(str(tmp_path / "history"), minilm.dimension)
    _index(table, minilm, DOCUMENTS, "v1")
    _index(table, minilm, EDITED, "v2")  # replaced rows stay in the full-text index until compacted
    delete_document(table, "kb/pets.md")
    table.create_index("text", config=FTS(), replace=True)  # index only what is live now...
    _index(table, minilm, {"kb/pets.md": DOCUMENTS["kb/pets.md"]}, "v3")  # ...plus unindexed rows
    _index(table, minilm, EDITED, "v4")
    as_written = _rankings(table, minilm)
    lance_before = _lance_bm25(table, "checked bag cost euros")

    table.optimize()
    compacted = _rankings(table, minilm)
    table.create_index("text", config=FTS(), replace=True)
    rebuilt = _rankings(table, minilm)

    fresh = open_chunk_table(str(tmp_path / "fresh"), minilm.dimension)
    _index(fresh, minilm, {**DOCUMENTS, **EDITED}, "v1")
    # The premise: LanceDB's own BM25 scores moved with compaction.
    assert _lance_bm25(table, "checked bag cost euros") != lance_before
    assert as_written == compacted == rebuilt == _rankings(fresh, minilm)
    assert as_written[("How heavy can my cabin bag be?", SearchMode.HYBRID)][0][0] == \
        "kb/baggage.md#0"


def test_rows_added_after_the_index_was_built_are_searched(minilm, tmp_path):
    table = open_chunk_table(str(tmp_path / "lance"), minilm.dimension)
    _index(table, minilm, DOCUMENTS, "v1")
    table.optimize()
    _index(table, minilm, {"kb/wifi.md": b"# Wi-Fi\n\nWi-Fi on board costs 8 euros per flight."},
           "v1")
    for mode in SearchMode:
        hits = search_chunks(table, minilm, "How much is wifi on board?", k=1, mode=mode)
        assert hits[0].doc_key == "kb/wifi.md", mode


def test_term_statistics_follow_new_rows_in_the_background(minilm, tmp_path, monkeypatch):
    import time

    from rag_assets.knowledge import search

    table = open_chunk_table(str(tmp_path / "lance"), minilm.dimension)
    _index(table, minilm, DOCUMENTS, "v1")
    table_statistics.clear()
    first = table_statistics.get(table)
    assert first.rows == len(DOCUMENTS) and "internet" not in first.frequencies
    _index(table, minilm, {"kb/wifi.md": b"# Wi-Fi\n\nInternet on board costs 8 euros."}, "v1")
    assert table_statistics.get(table) is first  # fresh counts are reused until they are old
    monkeypatch.setattr(search, "STATISTICS_MAX_AGE_S", 0.0)
    deadline = time.monotonic() + 10
    while table_statistics.get(table).rows == first.rows and time.monotonic() < deadline:
        time.sleep(0.05)
    recounted = table_statistics.get(table)
    assert recounted.rows == len(DOCUMENTS) + 1 and recounted.frequencies["internet"] == 1
