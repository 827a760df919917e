"""parse_cdc_record: every accepted format, and a dead letter with a clear reason for bad input."""

from __future__ import annotations

import json

import pytest

from rag_assets.customers.cdc_events import (
    CdcParserConfig,
    ChangeEvent,
    KafkaPosition,
    parse_cdc_record,
)
from rag_assets.platform.dead_letters import DeadLetter

TOPIC = "cdc.crm.customers"
SALLY = {"id": 1001, "first_name": "Sally", "last_name": "Thomas", "email": "sally.thomas@acme.com"}
DEBEZIUM_EXAMPLE = (
    b'{"before":null,"after":{"id":1001,"first_name":"Sally","last_name":"Thomas",'
    b'"email":"sally.thomas@acme.com"},"source":{"version":"2.1.3.Final","connector":"postgresql",'
    b'"name":"dbserver1","ts_ms":1582540780807,"snapshot":"true","db":"postgres",'
    b'"schema":"inventory","table":"customers","txId":596,"lsn":33816576,"xmin":null},'
    b'"op":"r","ts_ms":1582540780809}'
)


def parse(value, key=b'{"id":1001}', topic=TOPIC, config=None):
    return parse_cdc_record(topic, 3, 42, key, value, config)


def test_design_document_snapshot_read_is_parsed():
    event = parse(DEBEZIUM_EXAMPLE)
    assert event == ChangeEvent(
        system="crm",
        table="customers",
        pk="1001",
        op="r",
        row=SALLY,
        source_ts_ms=1582540780807,
        tx_id=596,
        lsn=33816576,
        position=KafkaPosition(TOPIC, 3, 42),
    )


@pytest.mark.parametrize("wrapped", [False, True])
def test_schema_wrapper_is_optional_for_value_and_key(wrapped, dbz_value, dbz_key):
    event = parse(dbz_value("u", after=SALLY, wrapped=wrapped), key=dbz_key(1001, wrapped))
    assert isinstance(event, ChangeEvent)
    assert (event.op, event.pk, event.row["email"]) == ("u", "1001", "sally.thomas@acme.com")


def test_create_without_kafka_key_takes_pk_from_after_id(dbz_value):
    event = parse(dbz_value("c", after=SALLY), key=None)
    assert (event.op, event.pk) == ("c", "1001")


def test_delete_with_key_only_before_image(dbz_value, dbz_key):
    event = parse(dbz_value("d", before={"id": 1001}), key=dbz_key(1001))
    assert (event.op, event.pk, event.row) == ("d", "1001", {"id": 1001})


def test_delete_without_before_image_uses_kafka_key(dbz_value, dbz_key):
    event = parse(dbz_value("d", before=None), key=dbz_key(7))
    assert (event.op, event.pk, event.row) == ("d", "7", {"id": 7})


def test_delete_keeps_the_full_before_image_when_present(dbz_value):
    event = parse(dbz_value("d", before=SALLY), key=None)
    assert event.row == SALLY


def test_truncate_has_no_key_and_no_row(dbz_value):
    event = parse(dbz_value("t"), key=None)
    assert (event.op, event.pk, event.row, event.source_ts_ms) == ("t", "", None, 1_700_000_000_000)


def test_tombstone_confirms_a_delete(dbz_key):
    event = parse(None, key=dbz_key(1001))
    assert isinstance(event, ChangeEvent)
    assert (event.op, event.pk, event.row) == ("tombstone", "1001", None)


def test_composite_key_is_canonical_whatever_the_field_order(dbz_value):
    row = {"booking_ref": "ABC123", "leg": 2, "status": "OK"}
    a = parse(
        dbz_value("c", after=row, table="bookings"),
        key=b'{"leg":2,"booking_ref":"ABC123"}',
        topic="cdc.booking.bookings",
    )
    b = parse(
        dbz_value("c", after=row, table="bookings"),
        key=b'{"booking_ref":"ABC123","leg":2}',
        topic="cdc.booking.bookings",
    )
    assert a.pk == b.pk == "booking_ref=ABC123|leg=2"


def test_string_and_integer_ids_give_the_same_pk(dbz_value):
    assert (
        parse(dbz_value("c", after={"id": "1001"}), key=None).pk
        == parse(dbz_value("c", after={"id": 1001}), key=None).pk
    )


def test_configured_primary_key_columns(dbz_value):
    config = CdcParserConfig(pk_columns={("loyalty", "members"): ("member_number",)})
    event = parse(
        dbz_value("c", after={"member_number": "LX-1", "tier": "gold"}, table="members"),
        key=None,
        topic="cdc.loyalty.members",
        config=config,
    )
    assert event.pk == "LX-1"


def dms(operation, data, **metadata):
    meta = {
        "timestamp": "2024-03-01T10:00:00.250000Z",
        "record-type": "data",
        "operation": operation,
        "partition-key-type": "schema-table",
        "schema-name": "public",
        "table-name": "customers",
        "transaction-id": 8324299,
    }
    meta.update(metadata)
    return json.dumps({"data": data, "metadata": meta}).encode()


@pytest.mark.parametrize(
    "operation, op", [("load", "r"), ("insert", "c"), ("update", "u"), ("delete", "d")]
)
def test_dms_operations_map_to_debezium_ops(operation, op):
    # The DMS key here is the partition key "public.customers", not the primary key.
    event = parse(dms(operation, SALLY), key=b'"public.customers"')
    assert (event.op, event.pk, event.row, event.tx_id) == (op, "1001", SALLY, 8324299)
    assert event.source_ts_ms == 1709287200250
    assert event.lsn is None


def test_dms_truncate():
    event = parse(dms("truncate", None, **{"record-type": "control"}), key=None)
    assert (event.op, event.pk, event.row) == ("t", "", None)


BAD_INPUTS = {
    "non-utf8 value": (TOPIC, b'{"id":1}', b'{"op":"c","after":{"id":"\xff"}}', "not valid UTF-8"),
    "non-utf8 key": (TOPIC, b"\xfe\xff", b'{"op":"c","after":{"id":1}}', "key is not valid UTF-8"),
    "malformed json": (TOPIC, None, b'{"op":"c", "after": {', "malformed JSON"),
    "malformed key": (TOPIC, b"{id:1}", b'{"op":"c","after":{"id":1}}', "key is malformed JSON"),
    "empty value": (TOPIC, None, b"", "empty"),
    "array value": (TOPIC, None, b'[{"op":"c"}]', "value is JSON an array, expected an object"),
    "number value": (TOPIC, None, b"42", "expected an object"),
    "nan constant": (TOPIC, None, b'{"op":"c","after":{"id":1,"score":NaN}}', "NaN"),
    "bad topic shape": (
        "crm-customers",
        None,
        b'{"op":"c","after":{"id":1}}',
        "cdc.<system>.<table>",
    ),
    "topic too deep": (
        "cdc.crm.public.customers",
        None,
        b'{"op":"c","after":{"id":1}}',
        "cdc.<system>.<table>",
    ),
    "unknown op": (TOPIC, None, b'{"op":"x","after":{"id":1}}', "unknown op 'x'"),
    "neither format": (TOPIC, None, b'{"after":{"id":1}}', "neither a Debezium envelope"),
    "after is a list": (TOPIC, None, b'{"op":"c","after":[1,2]}', "'after' is an array"),
    "before is a string": (TOPIC, None, b'{"op":"d","before":"1001"}', "'before' is a string"),
    "update without after": (
        TOPIC,
        None,
        b'{"op":"u","after":null}',
        "op 'u' without an 'after' image",
    ),
    "missing key": (TOPIC, None, b'{"op":"c","after":{"name":"x"}}', "missing key"),
    "delete without key": (TOPIC, None, b'{"op":"d","before":null}', "without a 'before' image"),
    "tombstone without key": (TOPIC, None, None, "tombstone (null value) without a key"),
    "key disagrees with row": (
        TOPIC,
        b'{"id":2}',
        b'{"op":"u","after":{"id":1}}',
        "does not match",
    ),
    "null key column": (
        TOPIC,
        b'{"id":null}',
        b'{"op":"u","after":{"id":1}}',
        "key column 'id' is null",
    ),
    "object id": (
        TOPIC,
        None,
        b'{"op":"c","after":{"id":{"a":1}}}',
        "key column 'id' is an object",
    ),
    "boolean id": (TOPIC, None, b'{"op":"c","after":{"id":true}}', "key column 'id' is a boolean"),
    "source not object": (
        TOPIC,
        None,
        b'{"op":"c","after":{"id":1},"source":[]}',
        "'source' is an array",
    ),
    "ts_ms is a string": (
        TOPIC,
        None,
        b'{"op":"c","after":{"id":1},"source":{"ts_ms":"yesterday"}}',
        "source.ts_ms is a string, expected an integer",
    ),
    "table mismatch": (
        TOPIC,
        None,
        b'{"op":"c","after":{"id":1},"source":{"table":"orders"}}',
        "does not match topic table",
    ),
    "schema payload not object": (
        TOPIC,
        None,
        b'{"schema":{},"payload":[1]}',
        "'payload' is an array",
    ),
    "dms unknown operation": (TOPIC, None, dms("upsert", SALLY), "unknown DMS operation 'upsert'"),
    "dms data not object": (TOPIC, None, dms("insert", [1]), "DMS 'data' is an array"),
    "dms control record": (
        TOPIC,
        None,
        dms("create-table", {}, **{"record-type": "control"}),
        "carries no row change",
    ),
    "dms bad timestamp": (
        TOPIC,
        None,
        dms("insert", SALLY, timestamp="last tuesday"),
        "not an ISO-8601",
    ),
    "dms metadata not object": (
        TOPIC,
        None,
        b'{"data":{},"metadata":"x"}',
        "'metadata' is a string",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_becomes_a_dead_letter_with_a_specific_reason(case):
    topic, key, value, expected_reason = BAD_INPUTS[case]
    letter = parse_cdc_record(topic, 5, 77, key, value)
    assert isinstance(letter, DeadLetter), f"{case}: parsed as {letter!r}"
    assert expected_reason in letter.reason
    assert (letter.source, letter.topic, letter.partition, letter.offset) == ("cdc", topic, 5, 77)
    assert letter.payload == value


def test_bad_input_reasons_are_distinct():
    reasons = {parse_cdc_record(t, 0, 0, k, v).reason for t, k, v, _ in BAD_INPUTS.values()}
    assert len(reasons) >= 25


def test_oversized_value_is_dead_lettered_without_keeping_the_payload(dbz_value):
    value = dbz_value("c", after={"id": 1, "notes": "x" * 2000})
    letter = parse(value, config=CdcParserConfig(max_value_bytes=1000))
    assert isinstance(letter, DeadLetter)
    assert f"value of {len(value)} bytes exceeds the limit of 1000 bytes" == letter.reason
    assert letter.payload is None


def test_default_size_limit_is_one_mebibyte(dbz_value):
    big = dbz_value("c", after={"id": 1, "notes": "x" * (1024 * 1024)})
    small = dbz_value("c", after={"id": 1, "notes": "x" * 1000})
    assert isinstance(parse(big, key=None), DeadLetter)
    assert isinstance(parse(small, key=None), ChangeEvent)


def test_unknown_table_is_rejected_when_tables_are_declared(dbz_value):
    config = CdcParserConfig(known_tables={("crm", "customers")})
    ok = parse(dbz_value("c", after=SALLY), config=config)
    bad = parse(dbz_value("c", after=SALLY, table="leads"), topic="cdc.crm.leads", config=config)
    assert isinstance(ok, ChangeEvent)
    assert bad.reason == "table crm.leads is not a known source table"


def test_table_check_can_be_switched_off_for_routed_topics(dbz_value):
    value = dbz_value("c", after=SALLY, table="customers_v2")
    assert isinstance(parse(value), DeadLetter)
    assert isinstance(parse(value, config=CdcParserConfig(check_source_table=False)), ChangeEvent)
