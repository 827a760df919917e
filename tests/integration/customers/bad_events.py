"""Unusable CDC records, by kind: each with a fragment of the dead-letter reason it must get.

Shared by the dead-letter test of the customer pipeline and the bad-input corpus suite.
"""

import json

from rag_assets.customers.cdc_events import CdcParserConfig
from tests.integration.customers.helpers import Message, dms, key_of

ALICE = {"id": 1, "first_name": "Alice", "last_name": "Moreau", "email": "alice@example.org",
         "phone": "+447700900001", "date_of_birth": 5520, "address_line1": "1 Quay St",
         "city": "Leeds", "postcode": "LS1 4AB", "country": "GB", "national_id": "QQ123456A"}
TICKET = {"id": 900001, "customer_email": "carla@example.org", "customer_phone": None,
          "customer_name": "Carla Ruiz", "subject": "Lost bag", "status": "open",
          "opened_at": "2025-01-10T09:00:00Z", "updated_at": "2025-01-10T09:00:00Z"}
CRM = "cdc.crm.customers"
LIMIT = CdcParserConfig().max_value_bytes


def envelope(op="c", after=None, before=None, ts_ms=5_000, table="customers", **source):
    return {"before": before, "after": after, "op": op, "ts_ms": ts_ms,
            "source": {"ts_ms": ts_ms, "table": table, "txId": 9, "lsn": 900, **source}}


def raw(value, key=b'{"id": 99}', topic=CRM):
    body = value if isinstance(value, bytes) or value is None else json.dumps(value).encode()
    return Message(topic, key, body, 0)


GOOD_ENVELOPE = json.dumps(envelope(after={**ALICE, "id": 50})).encode()

# name -> (message, a fragment of the expected reason)
CORPUS = {
    "malformed JSON": (raw(b"{op: c}"), "malformed JSON"),
    "truncated JSON": (raw(GOOD_ENVELOPE[:70]), "malformed JSON"),
    "invalid UTF-8": (raw(b'{"op":"c","after":{"id":99,"first_name":"\xff\xfe"}}'), "not valid UTF-8"),
    "empty value": (raw(b""), "empty (zero bytes)"),
    "JSON array": (raw([1, 2, 3]), "value is JSON an array"),
    "JSON string": (raw("hello"), "value is JSON a string"),
    "unknown op": (raw(envelope(op="x", after={"id": 99})), "unknown op 'x'"),
    "missing key": (raw(envelope(after={"first_name": "No Id"}), key=None), "missing key"),
    "wrong type ts_ms": (raw(envelope(after={"id": 99}, ts_ms="yesterday")), "source.ts_ms is a string"),
    "after not an object": (raw(envelope(after=[1, 2])), "'after' is an array"),
    "unknown table": (raw(envelope(after={"id": 7, "action": "login"}, table="audit_log"),
                          key=key_of(7), topic="cdc.crm.audit_log"), "not a known source table"),
    "source table mismatch": (raw(envelope(after={"id": 99}, table="orders")), "does not match topic table"),
    "oversized": (raw(envelope(after={**ALICE, "id": 10, "email": "big@example.org",
                                      "national_id": None, "notes": "x" * (LIMIT + 10_000)}),
                      key=key_of(10)), "exceeds the limit"),
    "NaN constant": (raw(b'{"op":"c","after":{"id":99,"points":NaN}}'), "non-standard constant NaN"),
    "nested too deeply": (raw(b'{"op":"c","after":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
                          "nested too deeply"),
    "key does not match row": (raw(envelope(after={"id": 98}), key=key_of(99)), "does not match the row"),
    "null key column": (raw(None, key=b'{"id": null}'), "key column 'id' is null"),
    "tombstone with an empty key": (raw(None, key=b"{}"), "tombstone (null value) without a key"),
    "create without after": (raw(envelope(op="c", after=None)), "without an 'after' image"),
    "neither Debezium nor DMS": (raw({"foo": 1}), "neither a Debezium envelope"),
    "key is an array": (raw(envelope(after={"id": 99}), key=b"[1]"), "key is JSON an array"),
    "payload not an object": (raw({"schema": {}, "payload": 5}), "'payload' is a number"),
    "DMS unknown operation": (dms("support", "tickets", "upsert", TICKET, ts="2025-01-10T09:00:00Z",
                                  partition=0), "unknown DMS operation 'upsert'"),
    "DMS bad timestamp": (dms("support", "tickets", "insert", TICKET, ts="last tuesday",
                              partition=0), "not an ISO-8601 time"),
}


def expected_positions(messages):
    """(topic, offset) of every message: one partition per topic, offsets in send order."""
    offsets, positions = {}, []
    for m in messages:
        positions.append((m.topic, offsets.get(m.topic, 0)))
        offsets[m.topic] = offsets.get(m.topic, 0) + 1
    return positions
