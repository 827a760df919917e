"""What the catalogue changes in the pure logic: which topic is which table, what an unknown
table's dead letter says, how a profile shows a table of its role, which short references a
look-up accepts — all from a catalogue the test writes, no Python mapping."""

from __future__ import annotations

import argparse
import io
import json
from datetime import date

from rag_assets.catalogue import parse_catalogue
from rag_assets.catalogue.cli import run_sources_command
from rag_assets.customers.cdc_apply import parser_config
from rag_assets.customers.cdc_events import ChangeEvent, KafkaPosition, parse_cdc_record
from rag_assets.customers.identity_graph import node_from_record
from rag_assets.customers.lookup import record_key_of_reference
from rag_assets.customers.profiles import build_profile
from rag_assets.customers.source_state import RecordKey, RecordVersion, SourceRecord
from rag_assets.platform.dead_letters import DeadLetter

CATALOGUE = r"""
version: 1
default_phone_region: US
cdc_topics: '(mysql1|pg1)\..+'
sources:
  - system: shop
    table: customers
    topics: [mysql1.inventory.customers]
    envelope: debezium
    short_reference: shop
    identity:
      email: [email]
      phone: [phone]
      given_name: first_name
      surname: last_name
  - system: shop
    table: orders
    topic_pattern: 'mysql1\.inventory\.orders(_archive)?'
    source_table: orders
    primary_key: [order_no]
    role: activity
    identity:
      email: [buyer]
    activity:
      kind: order
      section: recent_orders
      fields: {order: order_no, total: total}
      status: state
      hide_statuses: [void]
      summary: "order {order_no} for {total|?} ({state|new})"
  - system: club
    table: members
    topics: [pg1.public.members]
    envelope: dms
    role: membership
    identity:
      email: [email]
    membership:
      section: club
      fields: {level: level}
      summary: "club {level|basic}"
survivorship:
  source_priority: [club, shop]
"""


def catalogue(path="/etc/rag/catalogue.yaml"):
    return parse_catalogue(CATALOGUE, path)


def debezium(table, after, db="inventory", op="c", ts=1000):
    return json.dumps({"op": op, "before": None, "after": after, "ts_ms": ts,
                       "source": {"connector": "mysql", "db": db, "table": table, "ts_ms": ts,
                                  "file": "binlog.000003", "pos": 1234, "gtid": None}}).encode()


def parse(topic, value, key=None, config=None):
    return parse_cdc_record(topic, 0, 5, key, value, config or parser_config(catalogue()))


def test_topics_of_any_naming_become_the_catalogued_tables():
    event = parse("mysql1.inventory.customers", debezium("customers", {"id": 1, "email": "a@b.co"}),
                  key=b'{"id": 1}')
    assert isinstance(event, ChangeEvent)
    assert (event.system, event.table, event.pk) == ("shop", "customers", "1")
    archived = parse("mysql1.inventory.orders_archive",
                     debezium("orders", {"order_no": "A7", "buyer": "a@b.co"}))
    assert (archived.system, archived.table, archived.pk) == ("shop", "orders", "A7")


def test_an_unknown_table_is_a_dead_letter_naming_it_and_the_file_to_add_it_to():
    letter = parse("mysql1.inventory.addresses", debezium("addresses", {"id": 3}))
    assert isinstance(letter, DeadLetter)
    assert letter.reason == (
        "topic 'mysql1.inventory.addresses' (source db=inventory, table=addresses) is not a known "
        "source table: add it under `sources:` in /etc/rag/catalogue.yaml "
        "(topics: [mysql1.inventory.addresses]), then replay the dead letters")
    assert letter.payload is not None  # kept for the replay


def test_the_declared_envelope_is_enforced():
    dms = json.dumps({"data": {"id": 1}, "metadata": {"operation": "insert",
                                                      "table-name": "customers"}}).encode()
    letter = parse("mysql1.inventory.customers", dms)
    assert isinstance(letter, DeadLetter)
    assert "has envelope: debezium in the source catalogue" in letter.reason
    assert "AWS DMS message" in letter.reason


def test_a_topic_two_patterns_claim_is_a_dead_letter_naming_both():
    text = CATALOGUE.replace("survivorship:", """\
  - system: shop
    table: order_copies
    topic_pattern: 'mysql1\\.inventory\\.orders.*'
    identity: {email: [buyer]}
survivorship:""")
    config = parser_config(parse_catalogue(text, "two.yaml"))
    letter = parse("mysql1.inventory.orders", debezium("orders", {"order_no": "A7"}), config=config)
    assert isinstance(letter, DeadLetter)
    assert "claimed by tables shop.orders and shop.order_copies in two.yaml" in letter.reason


def record(system, table, pk, row, ts):
    version = RecordVersion(ts, -1)
    return SourceRecord(RecordKey(system, table, pk), row, version, version,
                        KafkaPosition(f"t.{table}", 0, ts))


def test_a_profile_shows_each_table_by_its_role_and_summary_template():
    cat = catalogue()
    records = [
        record("shop", "customers", "1", {"email": "a@b.co", "first_name": "Ann",
                                          "last_name": "Lee", "phone": "212 555 0100"}, 1000),
        record("shop", "orders", "A7", {"order_no": "A7", "buyer": "a@b.co", "total": 12,
                                        "state": "Paid"}, 3000),
        record("shop", "orders", "A8", {"order_no": "A8", "buyer": "a@b.co", "state": "void"}, 4000),
        record("club", "members", "9", {"email": "a@b.co", "level": "gold"}, 2000),
    ]
    profile = build_profile("cus_1", records, date(2025, 1, 1), cat.survivorship,
                            cat.identity_columns, cat.default_phone_region, cat.profile_roles)
    assert profile["golden"]["phone"]["value"] == "+12125550100"  # read in the catalogue's US
    assert profile["golden"]["club"]["level"] == "gold"
    assert [(o["order"], o["total"], o["status"]) for o in profile["recent_orders"]] == [
        ("A7", 12, "paid")]  # the void one is hidden
    assert [(i["kind"], i["summary"]) for i in profile["last_interactions"]] == [
        ("order", "order A8 for ? (void)"),
        ("order", "order A7 for 12 (Paid)"),
        ("club", "club gold"),
        ("profile_update", "shop.customers record changed"),
    ]
    assert "upcoming_bookings" not in profile  # nothing of the demo's tables


def test_only_catalogued_tables_join_the_identity_graph():
    cat = catalogue()
    known = record("shop", "orders", "A7", {"buyer": "A@B.co"}, 1)
    unknown = record("crm", "customers", "1", {"email": "a@b.co"}, 1)
    node = node_from_record(known, cat.default_phone_region, cat.identity_columns).node
    assert node.identity.values_of("email") == ["a@b.co"]
    assert node_from_record(unknown, cat.default_phone_region, cat.identity_columns) is None


def test_short_references_come_from_the_catalogue():
    refs = catalogue().short_references
    assert record_key_of_reference("shop:17", refs) == "shop.customers:17"
    assert record_key_of_reference("shop.orders:A7", refs) == "shop.orders:A7"
    assert record_key_of_reference("club:9", refs) is None  # no short reference declared


def test_sources_check_exit_status_and_messages(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(CATALOGUE)
    bad.write_text(CATALOGUE.replace("    envelope: dms\n", "    envelope: avro\n"))
    out, err = io.StringIO(), io.StringIO()
    assert run_sources_command(argparse.Namespace(action="check", file=str(good)), out, err) == 0
    assert "3 source table(s), valid" in out.getvalue()
    assert "shop.orders" in out.getvalue() and "activity" in out.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert run_sources_command(argparse.Namespace(action="check", file=str(bad)), out, err) == 2
    line = CATALOGUE.splitlines().index("    envelope: dms") + 1
    assert f"{bad}:{line}: envelope 'avro' is unknown; write one of any, debezium, dms" in err.getvalue()
    assert out.getvalue() == ""


def test_sources_drop_needs_a_table_and_yes():
    err = io.StringIO()
    for args in (argparse.Namespace(action="drop", file="shop.orders", yes=False),
                 argparse.Namespace(action="drop", file="orders", yes=True)):
        assert run_sources_command(args, io.StringIO(), err) == 2
    assert "usage: rag-assets sources drop SYSTEM.TABLE --yes" in err.getvalue()
