"""A retrieval process reads what a writer process commits, without a restart: the deployment
beyond one machine, where retrieval servers are stateless readers of the table (on S3 under
RAG_TEST_LANCEDB_ON_S3=1, which this test checks the fixture honours)."""

from __future__ import annotations

import os
import time

import pytest

from tests.integration.knowledge.helpers import in_process_worker, wait_until
from tests.integration.knowledge.processes import ask, spec_of, started

pytestmark = pytest.mark.integration

BAGGAGE = "# Cabin baggage\n\nEach passenger may bring one cabin bag of up to {kg} kg.\n"
LOUNGES = "# Lounges\n\nLounge access is included for Gold members on long-haul flights.\n"


def lancedb_objects(kb) -> int:
    listed = kb.client.list_objects_v2(Bucket=kb.s3.knowledge_bucket, Prefix="lancedb/")
    return listed["KeyCount"]


def test_a_retrieval_process_sees_each_commit_of_the_writer_without_restart(kb):
    on_s3 = os.environ.get("RAG_TEST_LANCEDB_ON_S3") == "1"
    assert kb.lancedb.uri.startswith("s3://") == on_s3
    baggage, lounges = kb.prefix + "baggage.md", kb.prefix + "lounges.md"
    with kb.postgres.connection() as conn:
        writer = in_process_worker(kb, conn, "writer")

        seconds_to_visible = []

        def commit_and_wait_for_reader(question: str, expect) -> None:
            """Index what changed, then wait until the reader's answer passes `expect`."""
            wait_until(lambda: writer.step() == 0, 30, "the writer to catch up")
            committed = time.monotonic()
            wait_until(lambda: expect(ask(reader, question)), 10, f"the reader: {question}")
            seconds_to_visible.append(round(time.monotonic() - committed, 2))

        first = kb.put("baggage.md", BAGGAGE.format(kg=8))
        wait_until(lambda: writer.step() == 0, 30, "the first document")
        with started("reader", spec_of(kb.postgres, kb.s3, kb.lancedb)) as reader:
            assert (baggage, first) in ask(reader, "cabin bag kg")
            added = kb.put("lounges.md", LOUNGES)
            commit_and_wait_for_reader("lounge access gold", lambda hits: (lounges, added) in hits)
            second = kb.put("baggage.md", BAGGAGE.format(kg=10))
            commit_and_wait_for_reader(
                "cabin bag kg", lambda hits: (baggage, second) in hits and (baggage, first)
                not in hits)
            kb.delete("lounges.md")
            commit_and_wait_for_reader(
                "lounge access gold", lambda hits: all(key != lounges for key, _ in hits))
            assert reader.poll() is None  # the same process throughout
        print(f"commit to reader: {seconds_to_visible} s")
    assert (lancedb_objects(kb) > 0) == on_s3
