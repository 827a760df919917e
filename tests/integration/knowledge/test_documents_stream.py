"""The streaming documents sensor against real S3, PostgreSQL and LanceDB: created, modified and
deleted documents are served (or gone) after one tick, only changed chunks are embedded, and
the lineage names each document version."""

import pytest

from sensors.s3_documents import DOCUMENTS_STREAM
from tests.streaming import check_evaluations, materialisations, stream_until_idle

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("streaming_workers")]

PARAGRAPHS = [f"Section {i}. " + " ".join(f"policy{i} word{j}." for j in range(60)) for i in range(6)]


def served(kb) -> dict[str, set[str]]:
    from rag_assets.knowledge.assets import open_table

    table = open_table(kb.lancedb, kb.embedder.dimension)
    rows = table.to_arrow().select(["doc_key", "doc_version"]).to_pylist()
    versions: dict[str, set[str]] = {}
    for row in rows:
        versions.setdefault(row["doc_key"], set()).add(row["doc_version"])
    return versions


def test_document_changes_are_served_after_one_tick(kb):
    etags = {name: kb.put(name, "\n\n".join(PARAGRAPHS)) for name in ("a.md", "b.md")}
    first = stream_until_idle(DOCUMENTS_STREAM, kb.resources)
    assert served(kb) == {kb.prefix + n: {etag} for n, etag in etags.items()}
    reported = materialisations(first)
    assert reported["documents"]["documents_created"] == 2
    chunks = reported["document_chunks"]
    assert {d["doc_key"]: d["doc_version"] for d in chunks["documents"]} == {
        kb.prefix + n: etag for n, etag in etags.items()}
    first_embedded = chunks["chunks_embedded"]

    edited = list(PARAGRAPHS)
    edited[3] = "Section 3. Bags up to 23 kg are free on every fare from today."
    new_etag = kb.put("a.md", "\n\n".join(edited))
    kb.delete("b.md")
    second = stream_until_idle(DOCUMENTS_STREAM, kb.resources, cursor=first.cursor)
    assert served(kb) == {kb.prefix + "a.md": {new_etag}}
    chunks = materialisations(second)["document_chunks"]
    assert 0 < chunks["chunks_embedded"] < first_embedded / 2
    assert chunks["documents_deleted"] == 1
    outcomes = {d["doc_key"]: d["outcome"] for d in chunks["documents"]}
    assert outcomes == {kb.prefix + "a.md": "indexed", kb.prefix + "b.md": "deleted"}
    lag = check_evaluations(first)["documents_lag"]
    assert lag.passed and lag.metadata["documents_queued"].value == 0
