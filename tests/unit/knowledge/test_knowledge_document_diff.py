import json

from rag_assets.knowledge.document_diff import (
    ChangeKind,
    ListedObject,
    ObjectEvent,
    RegistryEntry,
    diff_listing,
    parse_event_notification,
    resolve_events,
    sequencer_order,
)

PREFIX = "knowledge-base/"


def test_listing_diff_finds_created_modified_and_deleted():
    listed = [
        ListedObject("knowledge-base/new.md", '"e-new"', size=10),
        ListedObject("knowledge-base/same.md", '"e-same"'),
        ListedObject("knowledge-base/edited.html", '"e-2"'),
        ListedObject("knowledge-base/image.png", '"e-img"'),  # unsupported type
        ListedObject("knowledge-base/folder/", '"e-dir"'),  # folder marker
        ListedObject("elsewhere/other.md", '"e-x"'),  # outside the prefix
    ]
    registry = {
        "knowledge-base/same.md": RegistryEntry("e-same"),
        "knowledge-base/edited.html": RegistryEntry("e-1"),
        "knowledge-base/gone.txt": RegistryEntry("e-gone"),
        "elsewhere/not-ours.md": RegistryEntry("e-y"),
    }
    diff = diff_listing(listed, registry, PREFIX)
    assert [(c.kind, c.key, c.etag) for c in diff.changes] == [
        (ChangeKind.CREATED, "knowledge-base/new.md", "e-new"),
        (ChangeKind.MODIFIED, "knowledge-base/edited.html", "e-2"),
        (ChangeKind.DELETED, "knowledge-base/gone.txt", "e-gone"),
    ]


def test_version_id_decides_when_both_sides_have_one():
    # A rewrite with identical bytes keeps the ETag but gets a new version id.
    listed = [ListedObject("knowledge-base/a.md", '"same"', version_id="v2")]
    diff = diff_listing(
        listed, {"knowledge-base/a.md": RegistryEntry("same", "v1")}, PREFIX
    )
    assert [(c.kind, c.document_version) for c in diff.changes] == [
        (ChangeKind.MODIFIED, "v2")
    ]
    unchanged = diff_listing(
        listed, {"knowledge-base/a.md": RegistryEntry('"same"', "v2")}, PREFIX
    )
    assert not unchanged


def _record(event_name, key, sequencer, etag="abc", bucket="kb-bucket"):
    obj = {"key": key, "sequencer": sequencer, "size": 12}
    if etag:
        obj["eTag"] = etag
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": event_name,
        "s3": {"bucket": {"name": bucket}, "object": obj},
    }


def _payload(*records):
    return json.dumps({"Records": list(records)}).encode()


def test_notifications_decode_url_encoded_keys_and_filter_to_our_documents():
    parsed = parse_event_notification(
        _payload(
            _record(
                "ObjectCreated:Put",
                "knowledge-base/Baggage+rules%28v2%29.md",
                "0055AED6DCD90281E5",
            ),
            _record(
                "ObjectCreated:Put", "knowledge-base/photo.jpg", "0055AED6DCD90281E6"
            ),
            _record(
                "ObjectCreated:Put",
                "knowledge-base/x.md",
                "0055AED6DCD90281E7",
                bucket="another-bucket",
            ),
            _record(
                "ObjectRestore:Completed", "knowledge-base/y.md", "0055AED6DCD90281E8"
            ),
        ),
        bucket="kb-bucket",
        prefix=PREFIX,
    )
    assert parsed.dead_letters == []
    assert [(e.key, e.removed, e.etag) for e in parsed.events] == [
        ("knowledge-base/Baggage rules(v2).md", False, "abc")
    ]


def test_bad_notifications_become_dead_letters_with_their_offset():
    bad_json = parse_event_notification(
        b"{not json", "kb-bucket", PREFIX, topic="kb.s3-events", partition=0, offset=41
    )
    assert len(bad_json.dead_letters) == 1
    letter = bad_json.dead_letters[0]
    assert (letter.source, letter.topic, letter.partition, letter.offset) == (
        "documents",
        "kb.s3-events",
        0,
        41,
    )
    assert (
        letter.payload == b"{not json"
        and "malformed notification JSON" in letter.reason
    )

    no_records = parse_event_notification(b'{"foo": 1}', "kb-bucket", PREFIX)
    assert "no Records" in no_records.dead_letters[0].reason

    mixed = parse_event_notification(
        _payload(
            _record("ObjectCreated:Put", "knowledge-base/ok.md", "0A"),
            {"eventName": "ObjectCreated:Put"},
            _record("ObjectCreated:Put", "knowledge-base/no-seq.md", ""),
        ),
        "kb-bucket",
        PREFIX,
    )
    assert [e.key for e in mixed.events] == ["knowledge-base/ok.md"]
    assert [d.reason for d in mixed.dead_letters] == [
        "record 1: missing s3.bucket or s3.object",
        "record 2: missing or non-hex s3.object.sequencer",
    ]
    assert json.loads(mixed.dead_letters[0].payload) == {
        "eventName": "ObjectCreated:Put"
    }


def test_s3_test_event_is_ignored_quietly():
    parsed = parse_event_notification(
        b'{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"kb-bucket"}',
        "kb-bucket",
        PREFIX,
    )
    assert parsed.events == [] and parsed.dead_letters == []


def test_sequencers_compare_as_padded_hex():
    assert sequencer_order("0A") > sequencer_order("9")
    assert sequencer_order("00FF") == sequencer_order("ff")
    assert sorted(["0100", "FF", "0F"], key=sequencer_order) == ["0F", "FF", "0100"]


def test_events_resolve_to_the_last_event_per_key_against_the_registry():
    key = "knowledge-base/a.md"
    events = [
        ObjectEvent(key, removed=False, sequencer="0003", etag="e3"),
        ObjectEvent(key, removed=True, sequencer="0002"),  # arrived late, but older
        ObjectEvent("knowledge-base/b.md", removed=True, sequencer="0005"),
        ObjectEvent(
            "knowledge-base/c.md", removed=False, sequencer="0001", etag="same"
        ),  # redelivery
        ObjectEvent(
            "knowledge-base/d.md", removed=True, sequencer="0009"
        ),  # never held
        ObjectEvent(
            "knowledge-base/e.md", removed=False, sequencer="0004", etag="e-new"
        ),
    ]
    registry = {
        key: RegistryEntry("e1"),
        "knowledge-base/b.md": RegistryEntry("eb"),
        "knowledge-base/c.md": RegistryEntry("same"),
    }
    diff = resolve_events(events, registry)
    assert [(c.kind, c.key, c.etag) for c in diff.changes] == [
        (ChangeKind.CREATED, "knowledge-base/e.md", "e-new"),
        (ChangeKind.MODIFIED, key, "e3"),
        (ChangeKind.DELETED, "knowledge-base/b.md", "eb"),
    ]
