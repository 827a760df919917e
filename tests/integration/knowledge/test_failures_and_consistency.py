"""Bad files, embedder failures, concurrent readers, maintenance and checks."""

import threading
from datetime import timedelta

import pytest
from dagster import materialize

from rag_assets.knowledge import registry
from rag_assets.knowledge.assets import (
    document_chunks,
    document_chunks_maintenance,
    documents,
    open_table,
)
from rag_assets.knowledge.checks import knowledge_checks
from rag_assets.knowledge.chunk_store import DEFAULT_TABLE_NAME, doc_key_filter, read_document_rows
from rag_assets.platform.dead_letters import pending_dead_letters

pytestmark = pytest.mark.integration

GOOD = "# Refunds\n\nRefunds go to the original form of payment within seven days.\n"


def rows_of(kb):
    with kb.postgres.transaction() as cur:
        return registry.document_rows(cur)


def test_bad_files_are_recorded_with_a_reason_and_earlier_chunks_stay_served(kb):
    kb.put("good.md", GOOD)
    kb.put("was-good.md", "# Baggage\n\nOne cabin bag of up to 8 kg is included.\n")
    kb.tick_and_run()
    served = read_document_rows(open_table(kb.lancedb, kb.embedder.dimension),
                                kb.prefix + "was-good.md")
    assert served

    kb.put("junk.md", bytes(range(256)) * 8)                       # binary junk
    kb.put("legacy.txt", b"Caf\x81 \x8d menu \x90\x9d" * 4)          # not UTF-8 nor cp1252
    kb.put("empty.md", b"   \n")
    kb.put("huge.txt", b"Passengers may bring one bag. " * 7_000)    # ~210 kB, over the limit
    kb.put("was-good.md", b"\x00\x01\x02 corrupted upload \xff\xfe\x00")
    result = kb.tick_and_run(chunks_config={"max_document_bytes": 100_000})
    meta = kb.metadata(result, "document_chunks")
    assert meta["documents_rejected"] == 5 and meta["documents_failed"] == 0
    assert meta["dead_letters"] == 5

    rows = rows_of(kb)
    reasons = {key[len(kb.prefix):]: row["error"] for key, row in rows.items()
               if row["status"] == "rejected"}
    assert set(reasons) == {"junk.md", "legacy.txt", "empty.md", "huge.txt", "was-good.md"}
    assert "NUL" in reasons["junk.md"] or "binary" in reasons["junk.md"]
    assert "undecodable" in reasons["legacy.txt"] or "garbled" in reasons["legacy.txt"]
    assert "empty" in reasons["empty.md"]
    assert "over the 100000-byte limit" in reasons["huge.txt"]
    with kb.postgres.transaction() as cur:
        letters = pending_dead_letters(cur, "documents")
    assert {letter["object_key"] for letter in letters} == {kb.prefix + k for k in reasons}
    assert all(letter["object_version"] for letter in letters)
    huge = next(letter for letter in letters if letter["object_key"].endswith("huge.txt"))
    assert huge["payload"] is None  # too large to keep, never read

    # The corrupted upload does not take the earlier version's chunks away.
    table = open_table(kb.lancedb, kb.embedder.dimension)
    assert read_document_rows(table, kb.prefix + "was-good.md") == served
    assert rows[kb.prefix + "was-good.md"]["served_version"] == served[0]["doc_version"]
    # Rejected versions are not retried until the object changes.
    assert not kb.tick().run_requests
    kb.put("empty.md", GOOD)
    result = kb.tick_and_run()
    assert kb.metadata(result, "document_chunks")["documents_indexed"] == 1
    assert rows_of(kb)[kb.prefix + "empty.md"]["status"] == "indexed"


def test_embedder_failures_are_retried_with_backoff_tracked_and_retried_on_a_later_tick(kb):
    kb.put("a.md", GOOD)
    kb.put("b.md", "# Seats\n\nA seat change is free of charge within 24 hours of booking.\n")
    fast_retry = {"embed_retry_base_seconds": 0.01}

    # Transient: the first two calls fail, the third attempt succeeds.
    kb.embedder.fail_next = 2
    result = kb.tick_and_run(chunks_config=fast_retry)
    meta = kb.metadata(result, "document_chunks")
    assert meta["embed_retries"] == 2 and meta["documents_indexed"] == 2
    assert meta["documents_failed"] == 0

    # Persistent: the new version of b.md cannot be embedded.
    served = read_document_rows(open_table(kb.lancedb, kb.embedder.dimension), kb.prefix + "b.md")
    kb.embedder.poison = "POISON"
    kb.put("b.md", "# Seats\n\nPOISON: a seat change now costs 20 EUR.\n")
    result = kb.tick_and_run(chunks_config=fast_retry)
    meta = kb.metadata(result, "document_chunks")
    assert meta["documents_failed"] == 1 and meta["failed_documents"] == [kb.prefix + "b.md"]
    assert meta["embed_retries"] == 2  # 3 attempts
    row = rows_of(kb)[kb.prefix + "b.md"]
    assert row["status"] == "failed" and row["attempts"] == 1
    assert "TimeoutError" in row["error"] and row["next_attempt_at"] is not None
    table = open_table(kb.lancedb, kb.embedder.dimension)
    assert read_document_rows(table, kb.prefix + "b.md") == served  # old chunks still served

    # Backing off: nothing to do yet.
    assert not kb.tick().run_requests
    # Backoff over and the embedder healthy again: a later tick requests a drain run.
    kb.embedder.poison = None
    with kb.postgres.transaction() as cur:
        cur.execute("UPDATE kb_documents SET next_attempt_at = now() - interval '1 second'")
    result = kb.tick()
    (request,) = result.run_requests
    assert request.tags["rag/drain"] == "true"
    done = kb.run(request.run_config, fast_retry)
    assert kb.metadata(done, "document_chunks")["documents_indexed"] == 1
    assert rows_of(kb)[kb.prefix + "b.md"]["status"] == "indexed"
    rows = read_document_rows(open_table(kb.lancedb, kb.embedder.dimension), kb.prefix + "b.md")
    assert any("20 EUR" in r["text"] for r in rows)


def test_backoff_grows_and_is_capped():
    assert registry.retry_delay(1) == timedelta(minutes=1)
    assert registry.retry_delay(3) == timedelta(minutes=4)
    assert registry.retry_delay(30) == timedelta(hours=1)


def _version(n: int) -> str:
    # Each version has a different number of paragraphs, so a mix would be visible.
    paragraphs = [f"Rule {i} of version {n}. Passengers in group {i} board after group {i - 1}."
                  for i in range(3 + n % 4)]
    sections = "\n\n".join(f"## Section {i}\n\n{text}" for i, text in enumerate(paragraphs))
    return f"# Boarding v{n}\n\n{sections}\n"


def test_a_concurrent_reader_never_sees_a_document_half_updated(kb):
    import lancedb

    kb.put("boarding.md", _version(0))
    kb.put("other.md", GOOD)
    kb.tick_and_run()
    key = kb.prefix + "boarding.md"
    db = lancedb.connect(kb.lancedb.uri, storage_options=kb.lancedb.storage_options() or None,
                         read_consistency_interval=timedelta(0))
    reader_table = db.open_table(DEFAULT_TABLE_NAME)
    observed, problems, stop = [], [], threading.Event()

    def read_loop():
        while not stop.is_set():
            rows = reader_table.search().where(doc_key_filter(key)).limit(None).to_list()
            versions = {row["doc_version"] for row in rows}
            texts = {row["text"].split(" of version ")[-1][:2] for row in rows
                     if " of version " in row["text"]}
            numbers = sorted(row["chunk_no"] for row in rows)
            if len(versions) != 1 or len(texts) > 1 or numbers != list(range(len(rows))):
                problems.append((versions, texts, numbers))
            observed.append(tuple(versions))

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        for n in range(1, 6):
            kb.put("boarding.md", _version(n))
            kb.tick_and_run()
    finally:
        stop.set()
        reader.join()
    assert not problems
    assert len(set(observed)) >= 3  # the reader really saw several versions go by


def test_maintenance_compacts_and_the_checks_pass(kb):
    for n in range(4):
        kb.put(f"m{n}.md", f"# Doc {n}\n\nPassengers may bring item {n}.\n")
        kb.tick_and_run()
    resources = kb.resources
    result = materialize([documents, document_chunks, document_chunks_maintenance,
                          *knowledge_checks], resources=resources,
                         selection=[document_chunks_maintenance.key], instance=kb.instance)
    assert result.success
    meta = kb.metadata(result, "document_chunks_maintenance")
    assert meta["fragments_before"] > 1 and meta["fragment_count"] == 1
    assert {"doc_key", "chunk_id", "text"} <= set(meta["indexes"])

    checked = materialize([documents, document_chunks, *knowledge_checks], resources=resources,
                          run_config={"ops": {"document_chunks": {"config": {"rebuild": False}},
                                              "documents": {"config": {"full_listing": False}}}},
                          instance=kb.instance)
    evaluations = {e.check_name: e for e in checked.get_asset_check_evaluations()}
    assert set(evaluations) == {"chunk_fragment_count", "chunks_match_registry",
                                "documents_not_failing", "documents_lag"}
    assert all(e.passed for e in evaluations.values()), evaluations
    assert evaluations["chunk_fragment_count"].metadata["fragment_count"].value <= 2
