from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from rag_assets.customers.cdc_events import ChangeEvent, parse_cdc_record
from rag_assets.demo.debezium import DebeziumEncoder, encode_value
from rag_assets.demo.source_systems import COLUMNS, TABLES, RowChange

SOURCE_FIELDS = {"version", "connector", "name", "ts_ms", "snapshot", "db", "schema", "table",
                 "txId", "lsn", "xmin"}
TS = 1_736_942_400_000


def _value(message):
    value = json.loads(message.value)
    return value["payload"] if "payload" in value and "schema" in value else value


def test_snapshot_events_have_the_debezium_shape(sources):
    encoder = DebeziumEncoder()
    for system, table in TABLES:
        rows = sources.rows(system, table)
        messages = encoder.snapshot(system, table, rows, TS)
        assert len(messages) == len(rows)
        assert {m.topic for m in messages} == {f"cdc.{system}.{table}"}
        values = [_value(m) for m in messages]
        for message, value, row in zip(messages, values, rows):
            assert json.loads(message.key) == {"id": row["id"]}
            assert set(value) == {"before", "after", "source", "op", "ts_ms"}
            assert value["op"] == "r" and value["before"] is None
            assert value["after"]["id"] == row["id"]
            assert list(value["after"]) == [c for c, _ in COLUMNS[(system, table)]]
            assert SOURCE_FIELDS <= set(value["source"])
            assert value["source"]["connector"] == "postgresql"
            assert value["source"]["db"] == system and value["source"]["table"] == table
            assert value["ts_ms"] >= value["source"]["ts_ms"] == TS
        # one snapshot transaction at one LSN, first/true/last markers
        assert len({(v["source"]["txId"], v["source"]["lsn"]) for v in values}) == 1
        markers = [v["source"]["snapshot"] for v in values]
        assert markers[0] == "first" and markers[-1] == "last" and set(markers[1:-1]) <= {"true"}


def test_changes_have_increasing_tx_lsn_and_deletes_are_followed_by_tombstones():
    encoder = DebeziumEncoder(tx_id=100, lsn=1_000_000)
    before = {"id": 500001, "customer_email": "a@example.com", "status": "confirmed",
              "departure_date": date(2025, 3, 1)}
    after = {**before, "status": "cancelled"}
    changes = [
        RowChange("booking", "bookings", "c", 500001, None, before, "new"),
        RowChange("booking", "bookings", "u", 500001, before, after, "cancel"),
        RowChange("booking", "bookings", "d", 500001, after, None, "purge"),
    ]
    messages = []
    for i, change in enumerate(changes):
        messages += encoder.change(change, TS + i * 1000)
    assert [m.op for m in messages] == ["c", "u", "d", "tombstone"]
    assert len({m.key for m in messages}) == 1
    assert messages[-1].value is None
    values = [json.loads(m.value) for m in messages[:3]]
    tx = [v["source"]["txId"] for v in values]
    lsn = [v["source"]["lsn"] for v in values]
    assert tx == sorted(tx) and len(set(tx)) == 3
    assert lsn == sorted(lsn) and len(set(lsn)) == 3
    assert all(v["source"]["snapshot"] == "false" for v in values)
    assert [v["ts_ms"] for v in values] == sorted(v["ts_ms"] for v in values)
    c, u, d = values
    assert c["before"] is None and c["after"]["status"] == "confirmed"
    # bookings use REPLICA IDENTITY DEFAULT: no before on update, key-only before on delete
    assert u["before"] is None and u["after"]["status"] == "cancelled"
    assert d["after"] is None and d["before"]["id"] == 500001
    assert all(v is None for k, v in d["before"].items() if k != "id")


def test_full_replica_identity_tables_carry_before_images():
    encoder = DebeziumEncoder()
    before = {"id": 1001, "first_name": "Ann", "email": "ann@example.com"}
    after = {**before, "email": "ann.b@example.com"}
    update = json.loads(encoder.change(RowChange("crm", "customers", "u", 1001, before, after, "x"), TS)[0].value)
    assert update["before"]["email"] == "ann@example.com"
    assert update["after"]["email"] == "ann.b@example.com"


def test_schema_wrapper_for_wrapped_tables(sources):
    encoder = DebeziumEncoder(wrapped_tables=frozenset({("loyalty", "members")}))
    wrapped = json.loads(encoder.snapshot("loyalty", "members", sources.rows("loyalty", "members")[:1], TS)[0].value)
    plain = json.loads(encoder.snapshot("crm", "customers", sources.rows("crm", "customers")[:1], TS)[0].value)
    assert set(wrapped) == {"schema", "payload"}
    assert "schema" not in plain and plain["op"] == "r"
    schema = wrapped["schema"]
    assert schema["type"] == "struct" and schema["name"].endswith(".Envelope")
    fields = {f["field"]: f for f in schema["fields"]}
    assert set(fields) == {"before", "after", "source", "op", "ts_ms"}
    assert [f["field"] for f in fields["after"]["fields"]] == list(wrapped["payload"]["after"])


def test_temporal_encoding():
    assert encode_value(date(1970, 1, 2), "date") == 1
    assert encode_value(date(2000, 1, 1), "date") == 10957
    ts = datetime(2025, 1, 15, 8, 30, tzinfo=timezone.utc)
    assert encode_value(ts, "timestamptz") == "2025-01-15T08:30:00.000000Z"
    assert encode_value(None, "date") is None


@pytest.mark.parametrize("wrapped", [frozenset(), frozenset(TABLES)])
def test_the_project_cdc_parser_accepts_every_event(sources, wrapped):
    encoder = DebeziumEncoder(wrapped_tables=wrapped)
    messages = []
    for system, table in TABLES:
        messages += encoder.snapshot(system, table, sources.rows(system, table)[:20], TS)
    row = sources.rows("support", "tickets")[0]
    messages += encoder.change(RowChange("support", "tickets", "u", row["id"], row,
                                         {**row, "status": "closed"}, "x"), TS + 10)
    messages += encoder.change(RowChange("support", "tickets", "d", row["id"], row, None, "x"), TS + 20)
    for offset, message in enumerate(messages):
        event = parse_cdc_record(message.topic, 0, offset, message.key, message.value)
        assert isinstance(event, ChangeEvent), event
        assert event.op == message.op
