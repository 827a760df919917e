"""More than 1,000 objects through the paginated listing, and the `kb.s3-events` path."""

import json

import pytest
from rag_assets.knowledge import registry
from rag_assets.knowledge.assets import open_table
from rag_assets.knowledge.indexing import table_doc_keys
from rag_assets.platform.dead_letters import pending_dead_letters
from sensors.kafka_ranges import plan_tick
from sensors.s3_documents import S3_EVENTS_RANGES, S3SensorSettings

pytestmark = pytest.mark.integration

COUNT = 1_050


def test_a_bucket_of_more_than_1000_objects_is_backfilled_and_diffed_in_bounded_ticks(kb):
    names = {f"many/doc-{n:04d}.txt": f"Document {n}. Passengers may bring item {n} on board."
             for n in range(COUNT)}
    kb.put_many(names)
    settings = S3SensorSettings(max_documents_per_run=400)

    requested, cursors = [], []
    while True:
        result = kb.tick(settings)
        cursors.append(json.loads(result.cursor))
        if not result.run_requests:
            break
        (request,) = result.run_requests
        changes = request.run_config["ops"]["documents"]["config"]["changes"]
        assert len(changes) <= 400
        requested += changes
        kb.run(request.run_config)
    # 400 + 400 + 250 in generation 0; the pass then completes and the next one finds nothing.
    assert [c["generation"] for c in cursors] == [0, 0, 1, 2]
    assert cursors[0]["start_after"] == kb.prefix + "many/doc-0399.txt"
    assert len(requested) == COUNT
    assert {c["key"] for c in requested} == {kb.prefix + name for name in names}
    with kb.postgres.transaction() as cur:
        assert registry.status_counts(cur)["indexed"] == COUNT
    assert len(table_doc_keys(open_table(kb.lancedb, kb.embedder.dimension))) == COUNT

    # Deletions are found on every page, including beyond the first 1,000 keys.
    gone = ["many/doc-0005.txt", "many/doc-0999.txt", "many/doc-1040.txt"]
    for name in gone:
        kb.delete(name)
    kb.put("many/doc-0500.txt", "Document 500 was amended. Passengers may bring two items.")
    result = kb.tick(settings)
    (request,) = result.run_requests
    changes = request.run_config["ops"]["documents"]["config"]["changes"]
    assert sorted((c["kind"], c["key"]) for c in changes) == sorted(
        [("deleted", kb.prefix + name) for name in gone]
        + [("modified", kb.prefix + "many/doc-0500.txt")])
    kb.run(request.run_config)
    keys = table_doc_keys(open_table(kb.lancedb, kb.embedder.dimension))
    assert len(keys) == COUNT - 3 and not {kb.prefix + name for name in gone} & keys


def notification(kb, event_name: str, name: str, etag: str | None, sequencer: str) -> bytes:
    obj = {"key": (kb.prefix + name).replace(" ", "+"), "sequencer": sequencer}
    if etag:
        obj.update(eTag=etag, size=10)
    return json.dumps({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": event_name,
        "s3": {"bucket": {"name": kb.s3.knowledge_bucket}, "object": obj}}]}).encode()


def test_s3_event_notifications_on_kafka_drive_the_same_logic(kb):
    topic = kb.kafka.topic("kb.s3-events")
    kb.kafka.create_topics([topic], partitions=1)
    etag = kb.put("faq/check in.md", "# Check-in\n\nOnline check-in opens 24 hours before departure.")
    kb.put("faq/unannounced.md", "# Not notified\n\nThis object has no event yet.")
    producer = kb.kafka.producer()
    for value in [
        notification(kb, "ObjectCreated:Put", "faq/check in.md", etag, "0055AED6DCD90281E5"),
        notification(kb, "ObjectCreated:Put", "faq/check in.md", etag, "0055AED6DCD90281E5"),
        b"{not json",
        json.dumps({"Event": "s3:TestEvent"}).encode(),
    ]:
        producer.send(topic, value=value)
    producer.flush()

    def tick(cursor=None):
        return plan_tick(S3_EVENTS_RANGES, cursor, kb.kafka, kb.postgres, kb.instance)

    first = tick()
    (request,) = first.run_requests
    assert request.run_config["ops"]["document_chunks"]["config"] == {"rebuild": False}
    result = kb.run(request.run_config)
    docs_meta = kb.metadata(result, "documents")
    assert docs_meta["mode"] == "events" and docs_meta["notifications_read"] == 4
    assert docs_meta["documents_created"] == 1 and docs_meta["dead_letters"] == 1
    assert kb.metadata(result, "document_chunks")["documents_indexed"] == 1
    keys = table_doc_keys(open_table(kb.lancedb, kb.embedder.dimension))
    assert keys == {kb.prefix + "faq/check in.md"}  # the un-notified object is not listed
    with kb.postgres.transaction() as cur:
        (letter,) = pending_dead_letters(cur, "documents")
    assert "malformed notification JSON" in letter["reason"]

    # The same range again applies nothing; a removal event deletes the chunks.
    again = kb.run(request.run_config)
    assert kb.metadata(again, "documents")["ranges_applied"] == 0
    kb.delete("faq/check in.md")
    producer.send(topic, value=notification(kb, "ObjectRemoved:Delete", "faq/check in.md",
                                            None, "0055AED6DCD90281F0"))
    producer.flush()
    producer.close()
    second = tick(first.cursor)
    (request,) = second.run_requests
    result = kb.run(request.run_config)
    assert kb.metadata(result, "documents")["documents_deleted"] == 1
    assert kb.metadata(result, "document_chunks")["chunks_deleted"] >= 1
    assert not table_doc_keys(open_table(kb.lancedb, kb.embedder.dimension))


def test_a_listing_stops_within_its_time_budget_and_resumes_where_it_stopped(kb):
    from rag_assets.knowledge.listing import scan_listing

    for n in range(7):
        kb.put(f"t/doc{n}.md", f"# Doc {n}\n\nText {n}.")
    ticks = iter(range(0, 1000, 10))  # every clock reading is 10 s later

    def registry_range(after, upto):
        with kb.postgres.transaction() as cur:
            registry.ensure_knowledge_schema(cur, kb.postgres.db_schema)
            return registry.load_range(cur, kb.prefix, after, upto)

    first = scan_listing(kb.client, kb.s3.knowledge_bucket, kb.prefix, registry_range,
                         time_budget_s=15, page_size=2, clock=lambda: next(ticks))
    assert first.stopped_by == "time budget" and first.pages == 2
    assert first.next_start_after == kb.prefix + "t/doc3.md"
    rest = scan_listing(kb.client, kb.s3.knowledge_bucket, kb.prefix, registry_range,
                        start_after=first.next_start_after, page_size=2)
    assert rest.complete and rest.pages == 2
    assert [c.key for c in first.changes + rest.changes] == [
        kb.prefix + f"t/doc{n}.md" for n in range(7)]
