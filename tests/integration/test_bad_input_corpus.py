"""Bad input of every kind, across the three sources, in one suite.

Each source is run once (module-scoped) over a stream where every bad input sits between good
ones, exactly as the sensors deliver it:

* CDC (Kafka `cdc.*`): the 24 kinds of `customers/bad_events.py` plus values PostgreSQL cannot
  store and keys it cannot index;
* feedback (Kafka `app.feedback`): every rule of the event schema broken once;
* documents (S3 objects under the knowledge prefix, and notifications on `kb.s3-events`).

Every kind of the corpus is a test id of its own. An unusable input must end as a dead letter
with its reason (or, where the S3 server itself refuses it, a clear error); hostile but valid
input (injection strings, control and path-like characters, huge values under the limits) must
be stored exactly as sent. Then, per source, the stored state equals an oracle computed in
memory from the full input: nothing lost, nothing applied twice, and a repeated run changes
nothing.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import string
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.exceptions import ClientError
from rag_assets.feedback.events import MAX_RECORD_BYTES
from rag_assets.feedback.lake_store import read_lake_events
from rag_assets.knowledge import registry
from rag_assets.knowledge.assets import open_table
from rag_assets.knowledge.chunk_store import read_document_rows
from rag_assets.knowledge.chunking import chunk_document
from rag_assets.knowledge.parsing import UnusableDocument, parse_document
from rag_assets.platform.dead_letters import pending_dead_letters
from sensors.kafka_ranges import plan_tick
from sensors.s3_documents import S3_EVENTS_RANGES
from tests.conftest import private_kafka, private_postgres, private_s3
from tests.hostile_strings import INJECTIONS
from tests.integration.customers.bad_events import (
    ALICE,
    CORPUS,
    LIMIT,
    envelope,
    expected_positions,
    raw,
)
from tests.integration.customers.helpers import (
    assert_matches_oracle,
    catch_up,
    debezium,
    key_of,
    oracle_state,
    publish,
    read_log,
    stored_state,
)
from tests.integration.feedback import helpers as feedback
from tests.integration.knowledge.helpers import (
    EMBEDDERS,
    FlakyEmbedder,
    KnowledgeBase,
    StandinEmbedderResource,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Kind:
    """One kind of bad input. `reason`: a fragment of its dead letter's reason; None for hostile
    but valid input, which must be stored exactly as sent."""

    source: str  # "cdc", "feedback" or "documents"
    name: str
    payload: Any
    reason: str | None

    @property
    def id(self) -> str:
        return f"{self.source}: {self.name}"


# --------------------------------------------------------------------------------------------
# CDC
# --------------------------------------------------------------------------------------------

TEXT_COLUMNS = ("first_name", "last_name", "email", "phone", "address_line1", "city", "postcode",
                "country", "national_id")


def _customer(pk: Any, text: str | None = None, **columns) -> dict:
    row = {**ALICE, "id": pk, "email": f"c{zlib.crc32(str(pk).encode())}@example.org",
           "national_id": None, "phone": None}
    if text is not None:
        row.update({column: text for column in TEXT_COLUMNS})
    return {**row, **columns}


def _created(row: dict) -> Any:
    return raw(envelope(after=row), key=key_of(row["id"]))


def _random_text(length: int, seed: int) -> str:
    return "".join(random.Random(seed).choices(string.ascii_letters + string.digits, k=length))


CDC_EXTRA = {
    "NUL in a text value": (_created(_customer(97, city="Le\u0000eds")), "holds a NUL character"),
    "lone surrogate in a text value": (_created(_customer(96, last_name="Mo\ud800reau")),
                                       "holds a lone surrogate"),
    "NUL in a column name": (_created({**_customer(95), "no\u0000te": "x"}), "holds a NUL character"),
    "primary key over 1 KB": (_created(_customer(_random_text(6_000, 1))), "exceeds the 1024-byte limit"),
}
CDC_VALID = {
    **{f"injection string {i} in every text field and the key": _created(_customer(text, text))
       for i, text in enumerate(INJECTIONS)},
    "control and format characters in text": _created(_customer(
        2001, first_name="A\x1b[31mlice\x07", last_name="Mo\u202ereau", city="Le\teds\r\n")),
    "path-like key and values": _created(_customer("../../etc/passwd", "/etc/shadow",
                                                   address_line1="C:\\Windows\\system32")),
    "primary key of 1 KB, at the limit": _created(_customer(_random_text(1_024, 2))),
    "huge values in every identity field (160 kB row)": _created(_customer(
        2002, first_name=_random_text(20_000, 3), last_name=_random_text(20_000, 4),
        email=_random_text(20_000, 5) + "@example.org", phone=_random_text(20_000, 6),
        national_id=_random_text(20_000, 7), city="é" * 10_000)),
}
CDC_KINDS = ([Kind("cdc", name, message, reason) for name, (message, reason) in CORPUS.items()]
             + [Kind("cdc", name, message, reason) for name, (message, reason) in CDC_EXTRA.items()]
             + [Kind("cdc", name, message, None) for name, message in CDC_VALID.items()])


def interleaved(good: list, kinds: list[Kind], every: int) -> list:
    """Good input first, after every `every` kinds, and last: each kind between good input."""
    good = list(good)
    stream = [good.pop(0)]
    for index, kind in enumerate(kinds, 1):
        stream.append(kind.payload)
        if index % every == 0 and len(good) > 1:
            stream.append(good.pop(0))
    return stream + good


def cdc_stream() -> list:
    good = [debezium("crm", "customers", "c", pk=n, after=_customer(n), ts_ms=1_000 + n, tx_id=n,
                     lsn=10 * n, partition=0) for n in range(1, 8)]
    return interleaved(good, CDC_KINDS, 5)


@dataclass
class CdcOutcome:
    messages: list
    letters: dict  # (topic, offset) -> dead letter
    state: Any
    oracle: Any

    def letter(self, kind: Kind) -> dict | None:
        position = expected_positions(self.messages)[self.messages.index(kind.payload)]
        return self.letters.get(position)


@pytest.fixture(scope="module")
def cdc_outcome(local_services):
    with private_kafka(local_services) as kafka, private_postgres(local_services) as postgres:
        messages = cdc_stream()
        publish(kafka, messages, partitions=1, topic_configs={"max.message.bytes": str(4 * LIMIT)},
                max_request_size=4 * LIMIT)
        catch_up(kafka, postgres)
        with postgres.transaction() as cur:
            letters = pending_dead_letters(cur, "cdc")
        outcome = CdcOutcome(messages, {(d["topic"], d["offset"]): d for d in letters},
                             stored_state(postgres), oracle_state(read_log(kafka)))
        with postgres.transaction() as cur:  # a redelivery of every range
            cur.execute("DELETE FROM applied_offsets")
        catch_up(kafka, postgres)
        with postgres.transaction() as cur:
            outcome.letters_after_redelivery = len(pending_dead_letters(cur, "cdc"))
        outcome.state_after_redelivery = stored_state(postgres)
        yield outcome


def check_cdc(kind: Kind, outcome: CdcOutcome) -> None:
    letter = outcome.letter(kind)
    if kind.reason is not None:
        assert letter is not None, "no dead letter"
        assert kind.reason in letter["reason"]
        return
    assert letter is None, letter["reason"]
    row = json.loads(kind.payload.value)["after"]
    assert outcome.state.live_rows[f"crm.customers:{row['id']}"] == row


# --------------------------------------------------------------------------------------------
# Feedback
# --------------------------------------------------------------------------------------------

T0 = datetime(2025, 1, 14, 9, tzinfo=timezone.utc)
TURN = {"conversation_id": "bad", "turn_id": 1, "customer_ref": "crm:1", "ts": feedback.iso(T0),
        "question": "Can I bring a pet?", "answer": "Small pets travel in the cabin.",
        "model_id": "model-a", "latency_ms": 420, "retrieved_ids": ["pets.md#0"], "rating": 5,
        "comment": "great"}


def _turn(**changes) -> bytes:
    return json.dumps({**TURN, **changes}).encode()


def _without(name: str) -> bytes:
    return json.dumps({k: v for k, v in TURN.items() if k != name}).encode()


FEEDBACK_BAD = {
    "tombstone": (None, "tombstone"),
    "empty value": (b"", "malformed_json"),
    "truncated JSON": (_turn()[:60], "malformed_json"),
    "invalid JSON": (b"{conversation_id: bad}", "malformed_json"),
    "invalid UTF-8": (b'{"conversation_id": "\xff\xfe"}', "not_utf8"),
    "JSON array": (b"[1, 2]", "not_an_object"),
    "JSON string": (b'"turn"', "not_an_object"),
    "NaN constant": (_turn()[:-1] + b', "latency_ms": NaN}', "malformed_json"),
    "nested too deeply": (b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "malformed_json"),
    "duplicate key": (_turn()[:-1] + b', "rating": 1}', "duplicate_key"),
    "missing field": (_without("model_id"), "missing_field"),
    "null required field": (_turn(ts=None), "missing_field"),
    "id of the wrong type": (_turn(conversation_id=42), "wrong_type"),
    "latency of the wrong type": (_turn(latency_ms="fast"), "wrong_type"),
    "turn id a fraction": (_turn(turn_id=1.5), "wrong_type"),
    "negative turn id": (_turn(turn_id=-1), "wrong_type"),
    "retrieved ids not a list": (_turn(retrieved_ids="pets.md#0"), "wrong_type"),
    "empty retrieved id": (_turn(retrieved_ids=["pets.md#0", " "]), "empty_field"),
    "blank conversation id": (_turn(conversation_id="   "), "empty_field"),
    "id over 256 characters": (_turn(conversation_id="c" * 300), "field_too_long"),
    "escape sequence in model id": (_turn(model_id="model-\x1b[31ma"), "control_character"),
    "zero-width space in conversation id": (_turn(conversation_id="ba\u200bd"), "control_character"),
    "NUL in question": (_turn(question="pets\u0000?"), "control_character"),
    "lone surrogate in comment": (_without("comment")[:-1] + b', "comment": "\\ud800"}',
                                  "invalid_unicode"),
    "naive timestamp": (_turn(ts="2025-01-14T09:00:00"), "naive_timestamp"),
    "timestamp not a time": (_turn(ts="last tuesday"), "bad_timestamp"),
    "epoch seconds instead of ms": (_turn(ts=1_736_845_200), "bad_timestamp"),
    "epoch ms out of range": (_turn(ts=10**20), "bad_timestamp"),
    "timestamp an object": (_turn(ts={"$date": 1}), "bad_timestamp"),
    "rating out of range": (_turn(rating=7), "rating_out_of_range"),
    "rating a word": (_turn(rating="meh"), "bad_rating"),
    "rating a boolean": (_turn(rating=True), "bad_rating"),
    "negative latency": (_turn(latency_ms=-5), "latency_out_of_range"),
    "latency over a day": (_turn(latency_ms=10**12), "latency_out_of_range"),
    "oversized record": (_turn(comment="x" * (MAX_RECORD_BYTES + 1)), "oversized"),
}


def _valid_turn(conversation: str, minute: int, **changes) -> bytes:
    return _turn(conversation_id=conversation, ts=feedback.iso(T0 + timedelta(minutes=minute)),
                 **changes)


FEEDBACK_VALID = {
    **{f"injection string {i} in every text field": _valid_turn(
        text, i, turn_id=text, customer_ref=text, question=text, answer=text, model_id=text,
        retrieved_ids=[text], comment=text) for i, text in enumerate(INJECTIONS)},
    "path-like ids": _valid_turn("../../etc/passwd", 20, customer_ref="/etc/shadow",
                                 retrieved_ids=["../secret.md#0", "C:\\boot.ini#1"]),
    "format characters and newlines in free text": _valid_turn(
        "free-text", 21, question="Is it \u202eright-to-left?\r\n\ttab", comment="ok\u200b"),
    "question of 200 kB (under the limit)": _valid_turn("big", 22, question="Is it safe? " * 16_000),
}
FEEDBACK_KINDS = ([Kind("feedback", name, value, reason)
                   for name, (value, reason) in FEEDBACK_BAD.items()]
                  + [Kind("feedback", name, value, None) for name, value in FEEDBACK_VALID.items()])


def feedback_stream() -> list[bytes | None]:
    good = [_valid_turn(f"good-{n}", 30 + n, rating=n % 5 + 1) for n in range(8)]
    return interleaved(good, FEEDBACK_KINDS, 6)


@dataclass
class FeedbackOutcome:
    stream: list
    letters: dict  # offset -> dead letter
    turns: dict  # (conversation_id, turn_id) -> (customer_ref, model_id) in PostgreSQL
    texts: dict  # (conversation_id, turn_id) -> (question, comment) in the lake
    kpis: dict
    oracle: dict
    lake: list
    accepted: int
    repeat: dict = field(default_factory=dict)

    def letter(self, kind: Kind) -> dict | None:
        return self.letters.get(self.stream.index(kind.payload))


LATENESS = {"allowed_lateness_hours": 48.0}


@pytest.fixture(scope="module")
def feedback_outcome(local_services):
    with (private_kafka(local_services) as kafka, private_postgres(local_services) as postgres,
          private_s3(local_services) as s3):
        stream = feedback_stream()
        feedback.publish(kafka, [(b"corpus", value) for value in stream], partitions=1)
        run_config, _ = feedback.tick(kafka, postgres)
        run_config["ops"]["conversation_log"]["config"].update(LATENESS)
        feedback.run_stream(kafka, s3, postgres, run_config)
        expected, outcome, _ = feedback.oracle(kafka, timedelta(hours=LATENESS["allowed_lateness_hours"]))
        with postgres.transaction() as cur:
            letters = {d["offset"]: d for d in pending_dead_letters(cur, "feedback")}
            cur.execute("SELECT conversation_id, turn_id, customer_ref, model_id FROM feedback_turns")
            turns = {(c, t): (ref, model) for c, t, ref, model in cur.fetchall()}
        lake = {e.turn_key: (e.question, e.comment) for e in read_lake_events(s3, s3.get_client())}
        result = FeedbackOutcome(stream, letters, turns, lake, feedback.stored_kpis(postgres),
                                 expected, feedback.lake_rows(s3), len(outcome.accepted))
        result.repeat = feedback.run_stream(kafka, s3, postgres, run_config)["conversation_log"]
        yield result


def check_feedback(kind: Kind, outcome: FeedbackOutcome) -> None:
    letter = outcome.letter(kind)
    if kind.reason is not None:
        assert letter is not None, "no dead letter"
        assert letter["reason"].startswith(kind.reason + ":"), letter["reason"]
        return
    assert letter is None, letter["reason"]
    sent = json.loads(kind.payload)
    turn_key = (sent["conversation_id"], str(sent["turn_id"]))
    assert outcome.turns[turn_key] == (sent["customer_ref"], sent["model_id"])
    assert outcome.texts[turn_key] == (sent["question"], sent["comment"])


# --------------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------------

MAX_DOCUMENT_BYTES = 100_000
GOOD_DOC = "# Refunds\n\nRefunds go to the original form of payment within seven days.\n"


def _pdf(stream: bytes) -> bytes:
    """A one-page PDF whose content stream is `stream`, Flate-compressed as given."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
               b" /Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream
               + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = io.BytesIO(), []
    out.write(b"%PDF-1.4\n")
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, xref))
    return out.getvalue()


def _flate_bomb(megabytes: int = 80) -> bytes:
    compressor = zlib.compressobj(9)
    return b"".join(compressor.compress(b"0" * 1_000_000) for _ in range(megabytes)) + compressor.flush()


def _zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("policy.md", GOOD_DOC * 50)
    return buffer.getvalue()


GOOD_PDF = _pdf(zlib.compress(b"BT /F1 12 Tf 72 712 Td (Pets travel in the cabin.) Tj ET"))

# name -> (object name under the prefix, body, reason fragment)
DOCUMENT_BAD = {
    "binary junk": ("junk.md", bytes(range(256)) * 8, "binary"),
    "zip archive named .md": ("archive.md", _zip_archive(), "binary"),
    "gzip bomb named .txt (never inflated)": ("bomb.txt", gzip.compress(b"\0" * 50_000_000), "binary"),
    "PDF compression bomb": ("bomb.pdf", _pdf(_flate_bomb()), "compression bomb"),
    "not a PDF": ("fake.pdf", b"just text pretending", "not a PDF file"),
    "truncated PDF": ("truncated.pdf", GOOD_PDF[:150], "PDF"),
    "undecodable text": ("legacy.txt", b"Caf\x81 \x8d menu \x90\x9d" * 4, "undecodable"),
    "control characters": ("escapes.txt", b"\x1b[31m\x07\x08" * 200, "garbled"),
    "invalid UTF-16": ("utf16.txt", b"\xff\xfeA\x00\x00\xd8", "UTF-16"),
    "empty file": ("empty.md", b"", "empty"),
    "whitespace only": ("blank.md", b" \n\t \r\n", "empty"),
    "headings only": ("headings.md", b"# Title\n\n## Section\n", "no text"),
    "HTML of only script and style": ("script.html", b"<script>alert(1)</script><style>p{}</style>",
                                      "no text"),
    "oversized document": ("huge.txt", b"Passengers may bring one bag. " * 7_000,
                           f"over the {MAX_DOCUMENT_BYTES}-byte limit"),
    "corrupted upload over a good version": ("was-good.md", b"\x00\x01 corrupted \xff\xfe\x00", "binary"),
}


def _policy(number: int) -> str:
    return f"# Policy {number}\n\nRule {number}: a refund is paid within {number} days.\n"


# Each with a body of its own, so it can be found whatever name the S3 server lists it under
# (SeaweedFS lists a "\\" in a key as "/").
DOCUMENT_VALID = {
    **{f"injection string {i} in the key": (f"{text}.md", _policy(i))
       for i, text in enumerate(INJECTIONS)},
    "newline and tab in the key": ("new\nline\tkey.md", _policy(20)),
    "key of 800 characters": ("/".join(["k" * 200] * 4) + ".md", _policy(21)),
    "non-Latin key": ("政策/règles-ñ.md", _policy(22)),
    "valid PDF": ("pets.pdf", GOOD_PDF),
}
# Keys the S3 server refuses to store: a clear error at upload, nothing reaches the pipeline.
UPLOAD_REFUSED = {
    "'../' in the key": "../escape.md",
    "'./' in the key": "./dot.md",
    "a key segment of 1,000 characters": "s" * 1_000 + ".md",
}


def notification(bucket: str, key: str, sequencer: str = "0A") -> bytes:
    return json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": bucket}, "object": {"key": key, "sequencer": sequencer}}}]}).encode()


# name -> (notification bytes given the bucket and prefix, reason fragment)
NOTIFICATION_BAD: dict[str, tuple[Callable[[str, str], bytes | None], str]] = {
    "notification: malformed JSON": (lambda b, p: b'{"Records": [', "malformed notification JSON"),
    "notification: not UTF-8": (lambda b, p: b'{"Records": "\xff"}', "not UTF-8"),
    "notification: no Records list": (lambda b, p: b'{"records": []}', "no Records list"),
    "notification: nested too deeply": (lambda b, p: b'{"Records": ' + b"[" * 100_000
                                        + b"]" * 100_000 + b"}", "nested too deeply"),
    "notification: tombstone": (lambda b, p: None, "tombstone"),
    "notification: record without a key": (
        lambda b, p: notification(b, "").replace(b'"key": ""', b'"size": 1'), "missing s3.object.key"),
    "notification: non-hex sequencer": (lambda b, p: notification(b, p + "x.md", "zz"), "non-hex"),
    "notification: NUL in the key": (lambda b, p: notification(b, p + "nul%00.md"), "NUL"),
}
DOCUMENT_KINDS = ([Kind("documents", name, (obj, body), reason)
                   for name, (obj, body, reason) in DOCUMENT_BAD.items()]
                  + [Kind("documents", name, (obj, body), None)
                     for name, (obj, body) in DOCUMENT_VALID.items()]
                  + [Kind("documents", name, make, reason)
                     for name, (make, reason) in NOTIFICATION_BAD.items()]
                  + [Kind("documents", f"upload refused: {name}", key, "refused")
                     for name, key in UPLOAD_REFUSED.items()]
                  + [Kind("documents", "notification: '../' key S3 will not serve",
                          "../../escape.md", "S3 GetObject refused")])


def _bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def expected_chunks(key: str, body: bytes) -> list[str] | None:
    """The oracle of one object: the chunk texts it must be served as, None if unusable."""
    try:
        parsed = parse_document(key, body, MAX_DOCUMENT_BYTES)
    except UnusableDocument:
        return None
    return [chunk.text for chunk in chunk_document(parsed)] or None


@dataclass
class DocumentOutcome:
    prefix: str
    letters: list  # pending dead letters of "documents"
    rows: dict  # registry rows by key
    served: dict  # key -> chunk texts in LanceDB
    oracle: dict  # key -> chunk texts of the latest usable version
    refused: dict  # upload-refused key -> error code
    notified_offsets: list  # the kind name of each kb.s3-events offset
    repeat: dict = field(default_factory=dict)

    def letter_at(self, name: str) -> dict | None:
        offset = self.notified_offsets.index(name)
        return next((d for d in self.letters if d["offset"] == offset and d["topic"]), None)

    def letter_of(self, key: str) -> dict | None:
        return next((d for d in self.letters if d["object_key"] == key), None)


def _events_run(kb: KnowledgeBase) -> dict:
    """The run the `kb.s3-events` sensor requests; returns its run config."""
    (request,) = plan_tick(S3_EVENTS_RANGES, None, kb.kafka, kb.postgres, kb.instance).run_requests
    kb.run(request.run_config, {"max_document_bytes": MAX_DOCUMENT_BYTES})
    return request.run_config


def _upload_refusals(kb: KnowledgeBase) -> dict[str, str]:
    refused = {}
    for key in UPLOAD_REFUSED.values():
        try:
            kb.put(key, GOOD_DOC)
        except ClientError as error:
            refused[key] = error.response["Error"]["Code"]
    return refused


def _publish_notifications(kb: KnowledgeBase) -> list[str]:
    topic = kb.kafka.topic("kb.s3-events")
    kb.kafka.create_topics([topic], partitions=1)
    names, producer = [], kb.kafka.producer()
    for name, (make, _) in NOTIFICATION_BAD.items():
        producer.send(topic, key=b"corpus", value=make(kb.s3.knowledge_bucket, kb.prefix))
        names.append(name)
    producer.send(topic, value=notification(kb.s3.knowledge_bucket, kb.prefix + "../../escape.md"))
    names.append("notification: '../' key S3 will not serve")
    producer.flush()
    producer.close()
    return names


def _served(kb: KnowledgeBase, keys) -> dict[str, list[str]]:
    table = open_table(kb.lancedb, kb.embedder.dimension)
    return {key: [row["text"] for row in read_document_rows(table, key)] for key in keys}


@pytest.fixture(scope="module")
def documents_outcome(local_services, tmp_path_factory):
    from resources.lancedb import LanceDBResource

    name = "standin-corpus"
    EMBEDDERS[name] = FlakyEmbedder()
    lancedb = LanceDBResource(uri=str(tmp_path_factory.mktemp("corpus") / "lancedb"))
    with (private_kafka(local_services) as kafka, private_postgres(local_services) as postgres,
          private_s3(local_services) as s3):
        kb = KnowledgeBase(s3, postgres, lancedb, kafka, StandinEmbedderResource(standin=name))
        history: dict[str, list[bytes]] = {}

        def put(obj: str, body: bytes | str) -> None:
            kb.put(obj, body)
            history.setdefault(kb.prefix + obj, []).append(_bytes(body))

        put("was-good.md", "# Baggage\n\nOne cabin bag of up to 8 kg is included.\n")
        kb.tick_and_run()
        put("good.md", GOOD_DOC)
        for obj, body, _ in DOCUMENT_BAD.values():
            put(obj, body)
        for obj, body in DOCUMENT_VALID.values():
            put(obj, body)
        refused = _upload_refusals(kb)
        while kb.tick_and_run({"max_document_bytes": MAX_DOCUMENT_BYTES}):
            pass
        offsets = _publish_notifications(kb)
        events_config = _events_run(kb)

        listed = {o["Key"] for page in s3.get_client().get_paginator("list_objects_v2").paginate(
            Bucket=s3.knowledge_bucket, Prefix=kb.prefix) for o in page.get("Contents", [])}
        oracle = {}
        for key in listed:
            bodies = history.get(key) or [kb.client.get_object(
                Bucket=s3.knowledge_bucket, Key=key)["Body"].read()]
            usable = [c for c in (expected_chunks(key, body) for body in bodies) if c]
            if usable:
                oracle[key] = usable[-1]
        with postgres.transaction() as cur:
            letters = pending_dead_letters(cur, "documents")
            rows = registry.document_rows(cur)
        outcome = DocumentOutcome(kb.prefix, letters, rows, _served(kb, listed), oracle, refused,
                                  offsets)
        again = kb.run(events_config, {"max_document_bytes": MAX_DOCUMENT_BYTES})
        outcome.repeat = kb.metadata(again, "documents")
        yield outcome
    EMBEDDERS.pop(name, None)


def check_documents(kind: Kind, outcome: DocumentOutcome) -> None:
    if kind.name.startswith("notification: '../'"):
        row = outcome.rows[outcome.prefix + kind.payload]
        assert row["status"] == "failed", row["error"]
        assert kind.reason in row["error"]
    elif kind.name.startswith("notification"):
        letter = outcome.letter_at(kind.name)
        assert letter is not None, "no dead letter"
        assert kind.reason in letter["reason"]
    elif kind.name.startswith("upload refused"):
        assert outcome.refused.get(kind.payload), "S3 stored it"
        assert outcome.prefix + kind.payload not in outcome.rows
    else:
        key = outcome.prefix + kind.payload[0]
        if kind.reason is None:
            expected = expected_chunks(key, _bytes(kind.payload[1]))
            (served_as,) = [k for k, texts in outcome.served.items() if texts == expected]
            assert outcome.letter_of(served_as) is None
            assert outcome.rows[served_as]["status"] == "indexed"
        else:
            letter = outcome.letter_of(key)
            assert letter is not None, "no dead letter"
            assert kind.reason in letter["reason"]
            assert outcome.rows[key]["status"] == "rejected"


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------

KINDS = CDC_KINDS + FEEDBACK_KINDS + DOCUMENT_KINDS
CHECKS = {"cdc": check_cdc, "feedback": check_feedback, "documents": check_documents}


def test_the_corpus_is_large_and_named_uniquely():
    assert len({kind.id for kind in KINDS}) == len(KINDS)
    assert sum(kind.reason is not None for kind in KINDS) >= 30
    assert {kind.source for kind in KINDS} == set(CHECKS)


@pytest.mark.parametrize("kind", KINDS, ids=[kind.id for kind in KINDS])
def test_each_kind_ends_as_a_dead_letter_with_its_reason_or_as_data(kind, request):
    CHECKS[kind.source](kind, request.getfixturevalue(f"{kind.source}_outcome"))


def test_cdc_state_equals_the_oracle_and_nothing_is_applied_twice(cdc_outcome):
    assert_matches_oracle(cdc_outcome.state, cdc_outcome.oracle)
    bad = sum(kind.reason is not None for kind in CDC_KINDS)
    assert len(cdc_outcome.letters) == bad
    assert cdc_outcome.letters_after_redelivery == bad
    assert cdc_outcome.state_after_redelivery == cdc_outcome.state


def test_feedback_state_equals_the_oracle_and_nothing_is_applied_twice(feedback_outcome):
    for granularity, rows in feedback_outcome.oracle.items():
        assert feedback.normalised(feedback_outcome.kpis[granularity]) == feedback.normalised(rows)
    assert len(feedback_outcome.letters) == len(FEEDBACK_BAD)
    good = len(feedback_outcome.stream) - len(FEEDBACK_BAD)
    assert feedback_outcome.accepted == good == len(feedback_outcome.turns)
    assert len(feedback_outcome.lake) == len(set(feedback_outcome.lake)) == good
    assert feedback_outcome.repeat["events_read"].value == 0


def test_documents_state_equals_the_oracle_and_nothing_is_applied_twice(documents_outcome):
    outcome = documents_outcome
    served = {key: texts for key, texts in outcome.served.items() if texts}
    assert served == outcome.oracle  # the corrupted upload still serves its good version
    indexed = {key for key, row in outcome.rows.items() if row["status"] == "indexed"}
    assert indexed == set(outcome.oracle) - {outcome.prefix + "was-good.md"}
    object_letters = [d for d in outcome.letters if d["object_key"]]
    assert len(object_letters) == len({(d["object_key"], d["object_version"]) for d in object_letters})
    assert len(object_letters) == len(DOCUMENT_BAD)
    assert len(outcome.letters) - len(object_letters) == len(NOTIFICATION_BAD)
    assert outcome.repeat["ranges_applied"] == 0 and outcome.repeat["dead_letters"] == 0
