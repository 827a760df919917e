"""Several document workers on one table (real PostgreSQL, S3 and LanceDB — on S3 too with
RAG_TEST_LANCEDB_ON_S3=1): they split the queue, embed outside the writer lock, a killed worker's
claim is taken over, and updates and deletes of the same keys end in exactly the newest upload."""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time

import pytest

from rag_assets.knowledge import index_queue
from rag_assets.knowledge.assets import open_table
from tests.integration.knowledge.helpers import (
    EMBEDDERS,
    WORKER_STREAM,
    FlakyEmbedder,
    in_process_worker,
    step_until,
    wait_until,
)
from tests.integration.knowledge.processes import spec_of, started, started_together

pytestmark = pytest.mark.integration

KEYS = [f"policy-{n:02d}.md" for n in range(15)]
FILLER = " ".join(f"clause{j} applies to every booking." for j in range(40))
MARKER = re.compile(r"Marker (\S+) r(\d+) p(\d+)\.")


def markers(revision: int) -> set[str]:
    return {f"r{revision} p{n}" for n in range(1 + revision % 3)}


def body(key: str, revision: int, extra: str = "") -> str:
    """Every paragraph names its key, revision and number, so any chunk says where it came from."""
    paragraphs = [f"Marker {key} r{revision} p{n}. {FILLER}" for n in range(1 + revision % 3)]
    return f"# {key} revision {revision}\n\n" + "\n\n".join(paragraphs) + f"\n\n{extra}\n"


class Uploads:
    """What the test put in the bucket: per key, the newest revision and its ETag, or deleted."""

    def __init__(self, kb) -> None:
        self.kb = kb
        self.latest: dict[str, tuple[int, str] | None] = {}

    def put(self, key: str, revision: int) -> None:
        self.latest[key] = (revision, self.kb.put(key, body(key, revision)))

    def delete(self, key: str) -> None:
        self.kb.delete(key)
        self.latest[key] = None

    def expected(self) -> dict[str, tuple[str, set[str]]]:
        """Served key -> (ETag, paragraph markers of the newest revision)."""
        return {self.kb.prefix + key: (etag, markers(rev))
                for key, value in self.latest.items() if value is not None
                for rev, etag in [value]}


def served(kb) -> dict[str, tuple[str, set[str]]]:
    """Served key -> (its one version, the paragraph markers of its chunks); fails on duplicate or
    gapped chunks, on chunks of two versions and on text of another document or revision."""
    rows = open_table(kb.lancedb, kb.embedder.dimension).to_arrow().select(
        ["doc_key", "doc_version", "chunk_no", "chunk_id", "text"]).to_pylist()
    ids = [row["chunk_id"] for row in rows]
    assert len(ids) == len(set(ids)), "duplicate chunks"
    by_key: dict[str, list[dict]] = {}
    for row in rows:
        by_key.setdefault(row["doc_key"], []).append(row)
    result = {}
    for key, chunks in by_key.items():
        assert sorted(c["chunk_no"] for c in chunks) == list(range(len(chunks))), key
        (version,) = {c["doc_version"] for c in chunks}
        markers = {m for c in chunks for m in MARKER.findall(c["text"])}
        assert {name for name, _, _ in markers} == {key.removeprefix(kb.prefix)}, key
        result[key] = (version, {f"r{rev} p{n}" for _, rev, n in markers})
    return result


def registry_rows(kb) -> list[tuple]:
    with kb.postgres.transaction() as cur:
        cur.execute("SELECT doc_key, status, etag, claimed_by FROM kb_documents ORDER BY doc_key")
        return cur.fetchall()


def worker_spec(kb, name: str, lease_s: float = 3.0, **embedder) -> dict:
    return spec_of(kb.postgres, kb.s3, kb.lancedb, name=name, embedder=embedder,
                   options={"listing_interval_s": 0.2, "batch_size": 3, "claim_lease_s": lease_s})


def committed_batches(kb) -> dict[str, int]:
    """Batches each worker (streaming session) committed, from the lineage outbox."""
    with kb.postgres.transaction() as cur:
        cur.execute("SELECT metadata->>'streaming_session', count(*) FROM lineage_outbox"
                    " WHERE stream = %s AND asset_key = 'document_chunks'"
                    " AND jsonb_array_length(metadata->'documents') > 0 GROUP BY 1",
                    (WORKER_STREAM,))
        return dict(cur.fetchall())


def test_three_worker_processes_end_at_the_newest_upload_of_every_key(kb):
    uploads, rng = Uploads(kb), random.Random(20)
    names = [f"worker-{n}" for n in range(3)]
    with started_together("worker", [worker_spec(kb, name, delay_s=0.05) for name in names]):
        for key in KEYS:
            uploads.put(key, 0)
        for revision in range(1, 6):  # updates and deletes of the same keys while they index
            for key in rng.sample(KEYS, 8):
                if uploads.latest[key] is not None and rng.random() < 0.3:
                    uploads.delete(key)
                else:
                    uploads.put(key, revision)
            time.sleep(0.4)
        expected = uploads.expected()
        wait_until(lambda: served(kb) == expected, 180, "the newest upload of every key")
        wait_until(lambda: all(row[1] == "indexed" and row[3] is None
                               for row in registry_rows(kb)), 30, "an idle registry")
    assert served(kb) == expected
    assert {(row[0], row[2]) for row in registry_rows(kb)} == {
        (key, etag) for key, (etag, _) in expected.items()}
    assert set(committed_batches(kb)) == set(names)  # all three took part


def test_a_killed_workers_claim_is_taken_over_without_waiting_for_its_lease(kb, tmp_path):
    etag = kb.put("hang.md", body("hang.md", 1, extra="HANG"))
    marker = tmp_path / "embedding"
    spec = worker_spec(kb, "doomed", lease_s=120.0, hang_on="HANG", hang_marker=str(marker))
    with started("worker", spec) as doomed:
        wait_until(marker.exists, 60, "the worker to be embedding hang.md")
        [(key, status, _, claimed_by)] = registry_rows(kb)
        assert status == "pending" and claimed_by.startswith("doomed/")
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait()
    with kb.postgres.connection() as conn:
        survivor = in_process_worker(kb, conn, "survivor")
        # Within 30 s of the kill, while the dead worker's 120 s lease still runs: its claim died
        # with its connection.
        step_until(survivor, lambda: kb.prefix + "hang.md" in served(kb), 30,
                   "the survivor to index hang.md")
    assert served(kb)[kb.prefix + "hang.md"][0] == etag
    assert registry_rows(kb) == [(key, "indexed", etag, None)]
    assert set(committed_batches(kb)) == {"survivor"}


class GatedEmbedder(FlakyEmbedder):
    """Blocks on a text containing SLOW until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.gate = threading.Event(), threading.Event()

    def embed(self, texts):
        if any("SLOW" in text for text in texts):
            self.entered.set()
            assert self.gate.wait(60), "the test never opened the gate"
        return super().embed(texts)


def writer_lock_is_free(kb) -> bool:
    with kb.postgres.transaction() as cur:
        return index_queue.try_writer_lock(cur, kb.postgres.db_schema)


def test_a_worker_commits_while_another_is_embedding(kb):
    gated = EMBEDDERS[kb.embedder_resource.standin] = GatedEmbedder()
    slow_etag = kb.put("slow.md", body("slow.md", 1, extra="SLOW"))
    with kb.postgres.connection() as conn_a, kb.postgres.connection() as conn_b:
        slow_worker = in_process_worker(kb, conn_a, "slow")
        fast_worker = in_process_worker(kb, conn_b, "fast")
        thread = threading.Thread(target=slow_worker.step)
        thread.start()
        try:
            assert gated.entered.wait(30), "the slow worker never started embedding"
            assert writer_lock_is_free(kb)  # embedding holds no writer lock
            fast_etag = kb.put("fast.md", body("fast.md", 2))
            assert fast_worker.step() == 2  # listed fast.md and indexed it
            assert served(kb) == {kb.prefix + "fast.md": (fast_etag, markers(2))}
            assert thread.is_alive() and not gated.gate.is_set()
        finally:
            gated.gate.set()
            thread.join(60)
    assert served(kb) == {kb.prefix + "slow.md": (slow_etag, markers(1)),
                          kb.prefix + "fast.md": (fast_etag, markers(2))}


def test_an_older_version_embedded_after_its_claim_expired_is_dropped_at_commit(kb):
    """Worker A's claim on v1 expires while it embeds; B takes the key, indexes v2 and commits;
    A commits last, and the registry, checked under the writer lock, makes it drop v1."""
    gated = EMBEDDERS[kb.embedder_resource.standin] = GatedEmbedder()
    kb.put("doc.md", body("doc.md", 1, extra="SLOW"))
    with kb.postgres.connection() as conn_a, kb.postgres.connection() as conn_b:
        older = in_process_worker(kb, conn_a, "older", claim_lease_s=1.0)
        newer = in_process_worker(kb, conn_b, "newer", claim_lease_s=1.0)
        thread = threading.Thread(target=older.step)
        thread.start()
        try:
            assert gated.entered.wait(30), "worker A never started embedding v1"
            etag = kb.put("doc.md", body("doc.md", 2))
            step_until(newer, lambda: kb.prefix + "doc.md" in served(kb), 30, "B to index v2")
        finally:
            gated.gate.set()
            thread.join(60)
    assert served(kb) == {kb.prefix + "doc.md": (etag, markers(2))}
    assert registry_rows(kb) == [(kb.prefix + "doc.md", "indexed", etag, None)]
    with kb.postgres.transaction() as cur:
        cur.execute("SELECT metadata->>'streaming_session', (metadata->>'documents_stale')::int"
                    " FROM lineage_outbox WHERE asset_key = 'document_chunks'")
        assert sorted(cur.fetchall()) == [("newer", 0), ("older", 1)]
