"""Bad CDC input through real Kafka and PostgreSQL: 24 kinds of unusable records each become one
dead letter (reason, topic, partition, offset), are counted in the asset metadata, and do not
stop the good events around them; `rag-assets dead-letters list/replay` shows them and applies
the ones a fixed parser accepts, exactly once."""

import argparse
import io
import json

import pytest

from rag_assets.customers import cdc_apply
from rag_assets.customers.cdc_events import CdcParserConfig
from rag_assets.customers.cli_commands import add_parsers, customers_cli
from rag_assets.platform.dead_letters import pending_dead_letters
from tests.integration.customers.helpers import (
    Message,
    catch_up,
    debezium,
    dms,
    key_of,
    metadata,
    publish,
    stored_state,
)

pytestmark = pytest.mark.integration

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


def corpus_stream():
    """Good events before, between and after the bad ones."""
    good_before = [debezium("crm", "customers", "c", pk=1, after=ALICE, ts_ms=1_000, tx_id=1,
                            lsn=10, partition=0),
                   dms("support", "tickets", "insert", TICKET, ts="2025-01-10T09:00:00Z",
                       tx_id=1, partition=0)]
    good_after = [debezium("crm", "customers", "u", pk=1, after={**ALICE, "city": "York"},
                           ts_ms=2_000, tx_id=2, lsn=20, partition=0),
                  debezium("crm", "customers", "c", pk=2, after={**ALICE, "id": 2, "first_name": "Zed",
                                                                  "email": "zed@example.org",
                                                                  "national_id": None, "phone": None},
                           ts_ms=3_000, tx_id=3, lsn=30, partition=0)]
    bad = [message for message, _ in CORPUS.values()]
    middle = len(bad) // 2
    return good_before + bad[:middle] + [good_after[0]] + bad[middle:] + [good_after[1]]


def expected_positions(messages):
    """(topic, offset) of every message: one partition per topic, offsets in send order."""
    offsets, positions = {}, []
    for m in messages:
        positions.append((m.topic, offsets.get(m.topic, 0)))
        offsets[m.topic] = offsets.get(m.topic, 0) + 1
    return positions


def cli(args, postgres, kafka=None):
    parser = argparse.ArgumentParser(prog="rag-assets")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    out = io.StringIO()
    code = customers_cli(parser.parse_args(args), postgres=postgres, kafka=kafka, out=out)
    return code, out.getvalue()


def test_bad_events_become_dead_letters_and_the_good_ones_are_applied(kafka, postgres, monkeypatch):
    assert len(CORPUS) >= 15
    messages = corpus_stream()
    publish(kafka, messages, partitions=1, topic_configs={"max.message.bytes": str(4 * LIMIT)},
            max_request_size=4 * LIMIT)
    runs = catch_up(kafka, postgres)
    meta = {k: sum(metadata(r)[k] for r in runs) for k in ("events_read", "dead_letters", "events_applied")}
    assert meta == {"events_read": len(messages), "dead_letters": len(CORPUS), "events_applied": 4}

    state = stored_state(postgres)
    assert set(state.live_rows) == {"crm.customers:1", "crm.customers:2", "support.tickets:900001"}
    assert state.live_rows["crm.customers:1"]["city"] == "York"

    with postgres.transaction() as cur:
        letters = pending_dead_letters(cur, "cdc")
    assert len(letters) == len(CORPUS)
    positions = expected_positions(messages)
    by_position = {(d["topic"], d["offset"]): d for d in letters}
    for (name, (message, reason)), position in zip(
            CORPUS.items(), [positions[messages.index(m)] for m, _ in CORPUS.values()]):
        letter = by_position[position]
        assert reason in letter["reason"], name
        assert letter["partition"] == 0
        if name == "oversized":
            assert letter["payload"] is None  # not kept; the replay re-reads it from Kafka
        else:
            assert (None if letter["payload"] is None else bytes(letter["payload"])) == message.value

    # A redelivered run of the same ranges stores no second copy.
    with postgres.transaction() as cur:
        cur.execute("DELETE FROM applied_offsets")
    catch_up(kafka, postgres)
    with postgres.transaction() as cur:
        assert len(pending_dead_letters(cur, "cdc")) == len(CORPUS)

    # --- the CLI: list, then replay after the parser was "fixed" for two of the causes.
    code, out = cli(["dead-letters", "list", "--source", "cdc"], postgres)
    assert code == 0 and f"{len(CORPUS)} pending dead letter(s) of cdc" in out
    assert "not a known source table" in out
    code, out = cli(["dead-letters", "list", "--json"], postgres)
    listed = json.loads(out)
    assert {(d["topic"], d["partition"], d["offset"]) for d in listed} == {
        (d["topic"], d["partition"], d["offset"]) for d in letters}

    code, out = cli(["dead-letters", "replay"], postgres, kafka)  # no --source: refused
    assert code == 2

    fixed = CdcParserConfig(known_tables=frozenset(cdc_apply.PARSER_CONFIG.known_tables)
                            | {("crm", "audit_log")}, max_value_bytes=4 * LIMIT)
    monkeypatch.setattr(cdc_apply, "PARSER_CONFIG", fixed)
    code, out = cli(["dead-letters", "replay", "--source", "cdc", "--json"], postgres, kafka)
    report = json.loads(out)
    assert code == 1  # some letters still fail
    assert report["applied"] == 2 and report["outcomes"] == {"applied": 2}
    assert report["still_failing"] == len(CORPUS) - 2
    assert report["reread_from_kafka"] == len(CORPUS)
    assert report["records_linked"] >= 1 and report["profiles_written"] >= 1

    state = stored_state(postgres)
    assert {"crm.audit_log:7", "crm.customers:10"} <= set(state.live_rows)
    assert len(state.live_rows["crm.customers:10"]["notes"]) > LIMIT
    assert "crm.customers:10" in state.assignments  # linked and profiled like any record
    with postgres.transaction() as cur:
        cur.execute("SELECT reason, replay_result FROM dead_letters WHERE replayed_at IS NOT NULL")
        replayed = cur.fetchall()
        cur.execute("SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL"
                    " AND replay_result LIKE 'still failing: %%'")
        assert cur.fetchone()[0] == len(CORPUS) - 2
    assert sorted(result for _, result in replayed) == ["replayed: applied"] * 2

    # Replaying again applies nothing twice.
    code, out = cli(["dead-letters", "replay", "--source", "cdc", "--json"], postgres, kafka)
    assert json.loads(out)["applied"] == 0
    assert stored_state(postgres) == state


def test_replay_without_kafka_uses_the_stored_payload(kafka, postgres, monkeypatch):
    publish(kafka, [raw(envelope(after={"id": 7, "action": "login"}, table="audit_log"),
                        key=key_of(7), topic="cdc.crm.audit_log")], partitions=1)
    (run,) = catch_up(kafka, postgres)
    assert metadata(run)["dead_letters"] == 1
    fixed = CdcParserConfig(known_tables=frozenset(cdc_apply.PARSER_CONFIG.known_tables)
                            | {("crm", "audit_log")})
    monkeypatch.setattr(cdc_apply, "PARSER_CONFIG", fixed)
    code, out = cli(["dead-letters", "replay", "--source", "cdc"], postgres, kafka=False)
    assert code == 0 and "1 replayed (applied 1)" in out
    assert "crm.audit_log:7" in stored_state(postgres).live_rows
