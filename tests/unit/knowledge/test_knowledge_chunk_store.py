import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from rag_assets.knowledge.chunk_store import (
    TableUpkeep,
    build_document_rows,
    delete_document,
    fragment_count,
    index_names,
    index_segments,
    maintain_table,
    open_chunk_table,
    plan_document_update,
    read_document_rows,
    replace_document,
    unindexed_text_rows,
)
from rag_assets.knowledge.chunking import Chunk, content_hash
from rag_assets.knowledge.search import text_search, vector_search

DIM = 8
MODEL = "test-model"


def _chunks(texts, heading=("Policy",)):
    return [
        Chunk(number, heading, text, content_hash(heading, text))
        for number, text in enumerate(texts)
    ]


def _vectors(count, seed=0):
    vectors = (
        np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    )
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _write(
    table, doc_key, version, texts, run_id="run-1", embedding_model=MODEL, now=None
):
    plan = plan_document_update(
        read_document_rows(table, doc_key), _chunks(texts), embedding_model
    )
    rows = build_document_rows(
        doc_key,
        version,
        plan,
        _vectors(len(plan.to_embed), seed=len(texts)),
        embedding_model,
        run_id,
        now,
    )
    replace_document(table, doc_key, rows)
    return plan


def test_rows_have_the_documented_schema_and_provenance(lance_dir):
    table = open_chunk_table(lance_dir, DIM)
    _write(table, "kb/a.md", "etag-1", ["First.", "Second."], run_id="run-42")
    rows = read_document_rows(table, "kb/a.md")
    assert [(r["chunk_no"], r["chunk_id"], r["text"], r["heading"]) for r in rows] == [
        (0, "kb/a.md#0", "First.", "Policy"),
        (1, "kb/a.md#1", "Second.", "Policy"),
    ]
    assert {r["doc_version"] for r in rows} == {"etag-1"}
    assert {r["run_id"] for r in rows} == {"run-42"}
    assert {r["embedding_model"] for r in rows} == {MODEL}
    assert all(len(r["vector"]) == DIM for r in rows)
    assert all(r["embedded_at"].tzinfo is not None for r in rows)
    assert (
        str(table.schema.field("vector").type) == f"fixed_size_list<item: float>[{DIM}]"
    )


def test_unchanged_chunks_keep_their_vectors_even_when_renumbered(lance_dir):
    table = open_chunk_table(lance_dir, DIM)
    long_ago = datetime(2024, 1, 1, tzinfo=UTC)
    _write(table, "kb/a.md", "v1", ["Alpha.", "Bravo.", "Charlie."], now=long_ago)
    before = {r["content_hash"]: r for r in read_document_rows(table, "kb/a.md")}

    plan = _write(
        table,
        "kb/a.md",
        "v2",
        ["New intro.", "Alpha.", "Bravo.", "Charlie edited."],
        run_id="run-2",
    )
    assert [c.text for c in plan.to_embed] == ["New intro.", "Charlie edited."]
    assert sorted(r.chunk.text for r in plan.reused) == ["Alpha.", "Bravo."]

    after = read_document_rows(table, "kb/a.md")
    assert [r["text"] for r in after] == [
        "New intro.",
        "Alpha.",
        "Bravo.",
        "Charlie edited.",
    ]
    alpha = after[1]
    np.testing.assert_array_equal(
        alpha["vector"], before[alpha["content_hash"]]["vector"]
    )
    assert alpha["embedded_at"] == long_ago  # when the vector was made
    assert alpha["run_id"] == "run-2"  # who wrote this row
    assert {r["doc_version"] for r in after} == {"v2"}


def test_vectors_from_another_model_are_not_reused(lance_dir):
    table = open_chunk_table(lance_dir, DIM)
    _write(table, "kb/a.md", "v1", ["Alpha.", "Bravo."], embedding_model="old-model")
    plan = plan_document_update(
        read_document_rows(table, "kb/a.md"), _chunks(["Alpha.", "Bravo."]), MODEL
    )
    assert len(plan.to_embed) == 2 and plan.reused == []


def test_a_shorter_new_version_removes_the_extra_chunks_and_leaves_other_documents(
    lance_dir,
):
    table = open_chunk_table(lance_dir, DIM)
    _write(table, "kb/a.md", "v1", ["One.", "Two.", "Three.", "Four."])
    _write(table, "kb/b.md", "v1", ["Other document."])
    _write(table, "kb/a.md", "v2", ["One."])
    assert [r["chunk_id"] for r in read_document_rows(table, "kb/a.md")] == [
        "kb/a.md#0"
    ]
    assert [r["text"] for r in read_document_rows(table, "kb/b.md")] == [
        "Other document."
    ]


def test_delete_removes_every_chunk_of_one_document(lance_dir):
    table = open_chunk_table(lance_dir, DIM)
    _write(table, "kb/a.md", "v1", ["One.", "Two."])
    _write(table, "kb/b.md", "v1", ["Keep me."])
    delete_document(table, "kb/a.md")
    assert read_document_rows(table, "kb/a.md") == []
    assert table.count_rows() == 1


@pytest.mark.parametrize(
    "hostile_key",
    ["x' OR '1'='1", "kb/it's.md", "kb/a.md' OR doc_key LIKE '%", "kb/back\\slash'.md"],
)
def test_doc_keys_with_quotes_cannot_touch_other_documents(lance_dir, hostile_key):
    table = open_chunk_table(lance_dir, DIM)
    _write(table, "kb/victim.md", "v1", ["Must survive."])
    _write(table, hostile_key, "v1", ["Hostile one.", "Hostile two."])
    assert [r["text"] for r in read_document_rows(table, hostile_key)] == [
        "Hostile one.",
        "Hostile two.",
    ]
    _write(table, hostile_key, "v2", ["Replaced."])
    assert [r["text"] for r in read_document_rows(table, hostile_key)] == ["Replaced."]
    delete_document(table, hostile_key)
    assert read_document_rows(table, hostile_key) == []
    assert [r["text"] for r in read_document_rows(table, "kb/victim.md")] == [
        "Must survive."
    ]


def test_rows_of_another_document_are_refused(lance_dir):
    table = open_chunk_table(lance_dir, DIM)
    plan = plan_document_update([], _chunks(["One."]))
    rows = build_document_rows("kb/a.md", "v1", plan, _vectors(1), MODEL, "run")
    with pytest.raises(ValueError):
        replace_document(table, "kb/b.md", rows)


def test_concurrent_readers_never_see_a_half_updated_document(lance_dir):
    import lancedb

    table = open_chunk_table(lance_dir, DIM)
    chunk_counts = {f"v{i}": 2 + i % 5 for i in range(40)}  # versions shrink and grow
    _write(
        table, "kb/a.md", "v0", [f"v0 chunk {n}." for n in range(chunk_counts["v0"])]
    )
    _write(table, "kb/other.md", "v0", ["Bystander."])
    reader = lancedb.connect(
        lance_dir, read_consistency_interval=timedelta(0)
    ).open_table(table.name)

    done = threading.Event()
    observations: list[tuple[str, ...]] = []
    violations: list[str] = []

    def read_repeatedly():
        while not done.is_set():
            rows = reader.search().where("doc_key = 'kb/a.md'").limit(None).to_list()
            versions = {r["doc_version"] for r in rows}
            if len(versions) != 1:
                violations.append(
                    f"versions {sorted(versions)} in one read ({len(rows)} rows)"
                )
                continue
            version = versions.pop()
            expected = {f"{version} chunk {n}." for n in range(chunk_counts[version])}
            if {r["text"] for r in rows} != expected or len(rows) != len(expected):
                violations.append(
                    f"{version}: {len(rows)} rows, expected {len(expected)}"
                )
            observations.append(version)

    thread = threading.Thread(target=read_repeatedly)
    thread.start()
    try:
        for i in range(1, 40):
            version = f"v{i}"
            _write(
                table,
                "kb/a.md",
                version,
                [f"{version} chunk {n}." for n in range(chunk_counts[version])],
            )
    finally:
        done.set()
        thread.join(timeout=30)
    assert violations == []
    assert (
        len(set(observations)) > 3
    )  # the reader really saw the document change under it
    assert [r["text"] for r in read_document_rows(table, "kb/other.md")] == [
        "Bystander."
    ]


def test_maintenance_compacts_fragments_and_creates_indexes(lance_dir):
    table = open_chunk_table(lance_dir, DIM)
    assert index_names(table) == {
        "doc_key": "BTree",
        "chunk_id": "BTree",
        "text": "FTS",
    }
    for number in range(30):
        _write(table, f"kb/doc-{number}.md", "v1", [f"Document {number} text."])
    assert fragment_count(table) >= 30
    report = maintain_table(table, vector_index_min_rows=1_000)
    assert report.fragments_before >= 30 and report.fragments_after == 1
    assert report.rows == 30 and not report.vector_index_built
    assert "vector" not in index_names(table)
    assert [r["text"] for r in read_document_rows(table, "kb/doc-7.md")] == [
        "Document 7 text."
    ]


def test_vector_index_is_built_only_past_the_threshold(lance_dir):
    table = open_chunk_table(lance_dir, DIM)
    texts = [f"Chunk {n}." for n in range(300)]
    _write(table, "kb/big.md", "v1", texts)
    assert not maintain_table(table, vector_index_min_rows=301).vector_index_built
    report = maintain_table(table, vector_index_min_rows=300)
    assert report.vector_index_built and index_names(table)["vector"] == "IvfHnswSq"


def test_maintenance_rebuilds_a_vector_index_split_into_too_many_segments(lance_dir):
    table = open_chunk_table(lance_dir, DIM)
    _write(table, "kb/big.md", "v1", [f"Chunk {n}." for n in range(300)])
    assert maintain_table(table, vector_index_min_rows=300).vector_index_built
    upkeep = TableUpkeep(every_commits=1)
    for number in range(5):  # the writer folds new rows in, one segment at a time
        _write(table, f"kb/late-{number}.md", "v1", [f"Late chunk {number}."])
        assert not upkeep.after_commit(table).vector_index_built
    split = index_segments(table, "vector")
    assert split >= 3
    assert not maintain_table(table, vector_index_min_rows=300,
                              max_vector_segments=split).vector_index_built
    report = maintain_table(table, vector_index_min_rows=300, max_vector_segments=split - 1)
    assert report.vector_index_built and report.vector_index_segments == 1
    late = _vectors(1, seed=1)[0]  # the vector `_write` gave every one-chunk document
    hits = vector_search(table, late, k=5, where="doc_key LIKE 'kb/late-%'")
    assert {hit.doc_key for hit in hits} == {f"kb/late-{n}.md" for n in range(5)}


def test_the_writer_indexes_the_rows_as_soon_as_enough_are_outside_the_text_index(lance_dir):
    table = open_chunk_table(lance_dir, DIM)
    upkeep = TableUpkeep(every_commits=1_000, max_unindexed_rows=7)
    due = []
    for number in range(8):  # two chunks per commit
        _write(table, f"kb/doc-{number}.md", "v1",
               [f"Refund rule {number}.", f"Baggage allowance {number}."])
        due.append(upkeep.after_commit(table) is not None)
        assert unindexed_text_rows(table) < 7
    assert due == [False, False, False, True, False, False, False, True]
    assert unindexed_text_rows(table) == 0
    hits = text_search(table, "baggage allowance", k=20)
    assert {hit.doc_key for hit in hits} == {f"kb/doc-{n}.md" for n in range(8)}


def test_the_writer_compacts_every_n_commits_whatever_the_index(lance_dir):
    table = open_chunk_table(lance_dir, DIM)
    upkeep = TableUpkeep(every_commits=3, max_unindexed_rows=1_000)
    reports = []
    for number in range(6):
        _write(table, f"kb/doc-{number}.md", "v1", [f"Document {number} text."])
        reports.append(upkeep.after_commit(table))
    assert [report is not None for report in reports] == [False, False, True, False, False, True]
    assert all(report.fragments_after < report.fragments_before
               for report in reports if report is not None)
    assert unindexed_text_rows(table) == 0


def test_a_table_of_another_dimension_is_refused(lance_dir):
    open_chunk_table(lance_dir, DIM)
    with pytest.raises(ValueError, match="not 16 float32"):
        open_chunk_table(lance_dir, 16)
