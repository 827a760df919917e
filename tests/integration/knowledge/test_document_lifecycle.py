"""The knowledge pipeline against real S3 (SeaweedFS), PostgreSQL and LanceDB: create, modify,
delete, rename and backfill, with only changed chunks re-embedded."""

import random

import pytest

from rag_assets.knowledge import registry
from rag_assets.knowledge.assets import open_table
from rag_assets.knowledge.chunk_store import read_document_rows, unindexed_text_rows
from rag_assets.knowledge.indexing import table_doc_keys
from rag_assets.knowledge.search import text_search

pytestmark = pytest.mark.integration

_WORDS = ("baggage refund passport lounge voucher delay seat meal infant loyalty upgrade "
          "checkin boarding transfer cancel fare partner airport crew allowance").split()


def policy(seed: int, sections: int = 3, paragraphs: int = 6) -> str:
    rng = random.Random(seed)
    lines = [f"# Policy {seed}", ""]
    for number in range(sections):
        lines += [f"## Part {number}", ""]
        for _ in range(paragraphs):
            sentences = [
                " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 14))).capitalize()
                + f" (rule {rng.randint(1, 99999)})." for _ in range(rng.randint(3, 5))]
            lines += [" ".join(sentences), ""]
    return "\n".join(lines)


def edit_one_paragraph(text: str) -> str:
    paragraphs = text.split("\n\n")
    middle = len(paragraphs) // 2
    paragraphs[middle] = paragraphs[middle].replace("(rule", "(amended rule", 1)
    return "\n\n".join(paragraphs)


def table_of(kb):
    return open_table(kb.lancedb, kb.embedder.dimension)


def registry_rows(kb):
    with kb.postgres.transaction() as cur:
        return registry.document_rows(cur)


def test_backfill_modify_delete_rename_through_the_sensor(kb):
    texts = {f"policies/p{n}.md": policy(n) for n in range(3)}
    etags = {name: kb.put(name, body) for name, body in texts.items()}
    kb.put("policies/ignored.exe", b"not a document")

    # Backfill: the first pass against an empty registry creates everything.
    first = kb.tick()
    (request,) = first.run_requests
    changes = request.run_config["ops"]["documents"]["config"]["changes"]
    assert [(c["kind"], c["key"]) for c in changes] == [
        ("created", kb.prefix + name) for name in sorted(texts)]
    assert request.run_key.startswith("s3_documents_sensor:g0:")
    result = kb.run(request.run_config)
    docs_meta = kb.metadata(result, "documents")
    chunks_meta = kb.metadata(result, "document_chunks")
    assert docs_meta["documents_created"] == 3 and docs_meta["mode"] == "change set"
    assert chunks_meta["documents_indexed"] == 3 and chunks_meta["chunks_reused"] == 0
    assert chunks_meta["chunks_embedded"] == chunks_meta["rows_total"] > 3
    assert kb.embedder.texts_embedded == chunks_meta["chunks_embedded"]

    table = table_of(kb)
    rows = read_document_rows(table, kb.prefix + "policies/p0.md")
    run_id = result.run_id
    assert {r["doc_version"] for r in rows} == {etags["policies/p0.md"]}
    assert {r["run_id"] for r in rows} == {run_id}
    assert {r["embedding_model"] for r in rows} == {kb.embedder.model_id}
    assert [r["chunk_no"] for r in rows] == list(range(len(rows)))
    stored = registry_rows(kb)[kb.prefix + "policies/p0.md"]
    assert stored["status"] == "indexed" and stored["served_version"] == etags["policies/p0.md"]
    assert stored["chunk_count"] == len(rows) and len(stored["content_hash"]) == 64

    # Nothing changed: the pass ends (generation 1), no run.
    assert not kb.tick().run_requests

    # Modify one paragraph of one document: only its changed chunks are embedded.
    embedded_before = kb.embedder.texts_embedded
    new_etag = kb.put("policies/p1.md", edit_one_paragraph(texts["policies/p1.md"]))
    result = kb.tick_and_run()
    docs_meta = kb.metadata(result, "documents")
    chunks_meta = kb.metadata(result, "document_chunks")
    assert docs_meta["documents_modified"] == 1 and docs_meta["documents_created"] == 0
    assert chunks_meta["documents_indexed"] == 1
    assert 1 <= chunks_meta["chunks_embedded"] <= 3
    assert chunks_meta["chunks_reused"] >= 5
    assert kb.embedder.texts_embedded - embedded_before == chunks_meta["chunks_embedded"]
    rows = read_document_rows(table_of(kb), kb.prefix + "policies/p1.md")
    assert {r["doc_version"] for r in rows} == {new_etag}
    assert any("amended rule" in r["text"] for r in rows)
    assert {r["run_id"] for r in rows} == {result.run_id}

    # Delete: every chunk goes.
    kb.delete("policies/p2.md")
    result = kb.tick_and_run()
    assert kb.metadata(result, "documents")["documents_deleted"] == 1
    chunks_meta = kb.metadata(result, "document_chunks")
    assert chunks_meta["documents_deleted"] == 1 and chunks_meta["chunks_deleted"] > 0
    assert kb.prefix + "policies/p2.md" not in table_doc_keys(table_of(kb))
    assert kb.prefix + "policies/p2.md" not in registry_rows(kb)

    # Rename = delete + create in one change set; the vectors move with the text.
    kb.put("archive/p0-renamed.md", texts["policies/p0.md"])
    kb.delete("policies/p0.md")
    embedded_before = kb.embedder.texts_embedded
    result = kb.tick_and_run()
    docs_meta = kb.metadata(result, "documents")
    chunks_meta = kb.metadata(result, "document_chunks")
    assert (docs_meta["documents_created"], docs_meta["documents_deleted"]) == (1, 1)
    assert chunks_meta["chunks_embedded"] == 0 and chunks_meta["chunks_reused"] > 0
    assert kb.embedder.texts_embedded == embedded_before
    assert table_doc_keys(table_of(kb)) == {kb.prefix + "archive/p0-renamed.md",
                                            kb.prefix + "policies/p1.md"}
    assert chunks_meta["table_version"] > 0 and chunks_meta["fragment_count"] >= 1


def test_materialised_by_hand_it_backfills_from_a_full_listing_and_a_rebuild_agrees(kb):
    for n in range(4):
        kb.put(f"kb/doc{n}.md", policy(100 + n, sections=2, paragraphs=3))
    result = kb.run()  # no config: full listing + rebuild
    docs_meta = kb.metadata(result, "documents")
    chunks_meta = kb.metadata(result, "document_chunks")
    assert docs_meta["mode"] == "full listing" and docs_meta["documents_created"] == 4
    assert docs_meta["documents_seen"] == 4 and docs_meta["listing_pages"] == 1
    assert chunks_meta["documents_indexed"] == 4
    rows_before = chunks_meta["rows_total"]

    # A second hand run re-reads everything but re-embeds nothing.
    embedded = kb.embedder.texts_embedded
    again = kb.run()
    again_meta = kb.metadata(again, "document_chunks")
    assert kb.metadata(again, "documents")["documents_unchanged"] == 0
    assert again_meta["documents_indexed"] == 4 and again_meta["chunks_embedded"] == 0
    assert again_meta["rows_total"] == rows_before
    assert kb.embedder.texts_embedded == embedded
    # The sensor's first pass then finds the registry up to date.
    assert not kb.tick().run_requests


def test_a_run_keeps_the_rows_outside_the_text_index_below_its_bound(kb):
    names = [f"notice-{n}.md" for n in range(12)]
    kb.put_many({name: f"# Notice {n}\n\nGate change notice number {n}.\n"
                 for n, name in enumerate(names)})
    result = kb.tick_and_run({"batch_size": 2, "max_unindexed_rows": 5})
    table = table_of(kb)
    assert table.count_rows() == 12  # one chunk per notice, two per commit
    assert kb.metadata(result, "document_chunks")["compactions"] == 2  # after 6 and 12 rows
    assert unindexed_text_rows(table) == 0
    hits = text_search(table, "gate change notice", k=20)
    assert {hit.doc_key for hit in hits} == {kb.prefix + name for name in names}
