"""Bring your own sources, against real Kafka and PostgreSQL: two systems the product has never
seen — a PostgreSQL and a MySQL database streamed by Debezium under its default topic names —
connected by a catalogue file alone, through the deployment's own streaming sensor.

The expectations come from the events the test writes (who is who, which change is newest),
not from the product's code."""

from __future__ import annotations

import argparse
import io
import json
import time
from datetime import date

import pytest

from rag_assets.catalogue.cli import run_sources_command
from rag_assets.customers.catalogue_sync import RemovedSourceHasRecords
from rag_assets.customers.cli_commands import link_and_refresh
from rag_assets.customers.lookup import find_profile
from rag_assets.platform.dead_letters import pending_dead_letters
from sensors.customers import CDC_STREAM
from tests.catalogues import use_catalogue
from tests.integration.customers.helpers import (
    Message,
    customers_command,
    publish,
    stored_state,
)
from tests.streaming import materialisations, stream_until_idle, tick

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("streaming_workers")]

# Debezium's default topic names: <topic.prefix>.<schema>.<table> for PostgreSQL,
# <topic.prefix>.<database>.<table> for MySQL.
PG_TOPIC = "pgbill.public.accounts"
MYSQL_TOPIC = "mysqlshop.inventory.customers"
MYSQL_ORDERS = "mysqlshop.inventory.orders"

CATALOGUE = rf"""
version: 1
default_phone_region: US
cdc_topics: '(pgbill|mysqlshop)\..+'
sources:
  - system: billing
    table: accounts
    topics: [{PG_TOPIC}]
    envelope: debezium
    primary_key: [account_id]
    short_reference: billing
    identity:
      email: [email]
      phone: [phone]
      given_name: first_name
      surname: last_name
      date_of_birth: birth_date
  - system: shop
    table: customers
    topics: [{MYSQL_TOPIC}]
    envelope: debezium
    short_reference: shop
    identity:
      email: [email_address]
      phone: [mobile]
      full_name: name
survivorship:
  source_priority: [billing, shop]
  by_priority: [date_of_birth, address]
  by_recency: [email, phone, given_name, surname]
"""

ORDERS = rf"""
  - system: shop
    table: orders
    topics: [{MYSQL_ORDERS}]
    primary_key: [order_id]
    role: activity
    identity:
      email: [buyer_email]
    activity:
      kind: order
      section: recent_orders
      fields: {{order: order_id, total: total}}
      status: state
      hide_statuses: [cancelled]
      summary: "order {{order_id}} ({{state|new}})"
"""

BIRTH = date(1985, 3, 12)


def postgres_change(op: str, before: dict | None, after: dict | None, ts_ms: int, lsn: int,
                    tx_id: int) -> Message:
    """A Debezium PostgreSQL connector record through the JSON converter with schemas enabled:
    `{"schema", "payload"}` on key and value, `date` columns as days since the epoch."""
    row = {"type": "struct", "optional": True, "fields": [
        {"type": "int32", "optional": False, "field": "account_id"},
        {"type": "string", "optional": True, "field": "first_name"},
        {"type": "string", "optional": True, "field": "last_name"},
        {"type": "string", "optional": True, "field": "email"},
        {"type": "string", "optional": True, "field": "phone"},
        {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "version": 1,
         "field": "birth_date"}]}
    schema = {"type": "struct", "name": "pgbill.public.accounts.Envelope", "optional": False,
              "fields": [{**row, "field": "before"}, {**row, "field": "after"},
                         {"type": "struct", "field": "source", "fields": []},
                         {"type": "string", "optional": False, "field": "op"},
                         {"type": "int64", "optional": True, "field": "ts_ms"}]}
    payload = {
        "before": before, "after": after, "op": op, "ts_ms": ts_ms + 7, "transaction": None,
        "source": {"version": "2.7.3.Final", "connector": "postgresql", "name": "pgbill",
                   "ts_ms": ts_ms, "snapshot": "false", "db": "billingdb",
                   "sequence": f'["{lsn - 8}","{lsn}"]', "schema": "public", "table": "accounts",
                   "txId": tx_id, "lsn": lsn, "xmin": None},
    }
    pk = (after or before)["account_id"]
    key = {"schema": {"type": "struct", "name": "pgbill.public.accounts.Key", "optional": False,
                      "fields": [{"type": "int32", "optional": False, "field": "account_id"}]},
           "payload": {"account_id": pk}}
    return Message(PG_TOPIC, json.dumps(key).encode(),
                   json.dumps({"schema": schema, "payload": payload}).encode())


def mysql_change(topic: str, table: str, op: str, before: dict | None, after: dict | None,
                 ts_ms: int, pos: int, key_column: str = "id") -> Message:
    """A Debezium MySQL connector record with schemas disabled: the bare envelope; the source
    block has the binlog `file`/`pos`/`gtid`, no LSN."""
    envelope = {
        "before": before, "after": after, "op": op, "ts_ms": ts_ms + 5, "transaction": None,
        "source": {"version": "2.7.3.Final", "connector": "mysql", "name": "mysqlshop",
                   "ts_ms": ts_ms, "snapshot": "false", "db": "inventory", "sequence": None,
                   "table": table, "server_id": 223344, "gtid": None,
                   "file": "mysql-bin.000003", "pos": pos, "row": 0, "thread": 7, "query": None},
    }
    pk = (after or before)[key_column]
    return Message(topic, json.dumps({key_column: pk}).encode(), json.dumps(envelope).encode())


ANN_BILLING = {"account_id": 17, "first_name": "Ann", "last_name": "Lee",
               "email": "ann.lee@example.com", "phone": "+1 212 555 0100",
               "birth_date": (BIRTH - date(1970, 1, 1)).days}
ANN_SHOP = {"id": 42, "name": "Ann Lee", "email_address": "ANN.LEE@example.com",
            "mobile": "(212) 555-0100"}
BOB_SHOP = {"id": 43, "name": "Bob Stone", "email_address": "bob@example.org", "mobile": None}


def resources(kafka, postgres) -> dict:
    return {"kafka": kafka, "postgres": postgres}


def lookup(postgres, ref: str) -> dict | None:
    with postgres.transaction() as cur:
        return find_profile(cur, ref)


def test_two_unseen_databases_connected_by_a_catalogue_file_alone(kafka, postgres, tmp_path,
                                                                   monkeypatch):
    path = tmp_path / "catalogue.yaml"
    path.write_text(CATALOGUE)
    use_catalogue(monkeypatch, path)
    married = {**ANN_SHOP, "name": "Ann Lee-Smith", "email_address": "ann@newmail.example"}
    publish(kafka, [
        postgres_change("c", None, ANN_BILLING, ts_ms=1_000, lsn=2_000, tx_id=700),
        mysql_change(MYSQL_TOPIC, "customers", "c", None, ANN_SHOP, ts_ms=2_000, pos=154),
        mysql_change(MYSQL_TOPIC, "customers", "c", None, BOB_SHOP, ts_ms=2_500, pos=402),
        # The newest change of all: Ann's new surname and e-mail address, in the shop.
        mysql_change(MYSQL_TOPIC, "customers", "u", ANN_SHOP, married, ts_ms=5_000, pos=911),
        # An older billing change arriving later changes nothing the newer one decided.
        postgres_change("u", ANN_BILLING, {**ANN_BILLING, "phone": "+1 212 555 0100 "},
                        ts_ms=3_000, lsn=2_400, tx_id=701),
    ], partitions=1)

    stream_until_idle(CDC_STREAM, resources(kafka, postgres))

    state = stored_state(postgres)
    with postgres.transaction() as cur:
        assert pending_dead_letters(cur, "cdc") == []
    assert set(state.live_rows) == {"billing.accounts:17", "shop.customers:42", "shop.customers:43"}
    assert state.clusters == {frozenset({"billing.accounts:17", "shop.customers:42"}),
                              frozenset({"shop.customers:43"})}
    ann = lookup(postgres, "billing:17")
    assert ann is not None
    golden = ann["golden"]
    assert golden["email"]["value"] == "ann@newmail.example"
    assert golden["email"]["source"] == "shop.customers:42"
    assert golden["surname"]["value"] == "Lee-Smith"
    assert golden["phone"]["value"] == "+12125550100"
    assert golden["date_of_birth"]["value"] == BIRTH.isoformat()  # only billing knows it
    assert sorted(ann["sources"]) == ["billing.accounts:17", "shop.customers:42"]
    for ref in ("shop:42", "billing.accounts:17", "ann@newmail.example", "ANN.LEE@example.com",
                "+1 (212) 555-0100"):
        found = lookup(postgres, ref)
        assert found is not None and found["customer_id"] == ann["customer_id"], ref
    assert lookup(postgres, "shop:43")["customer_id"] != ann["customer_id"]


def test_an_uncatalogued_table_waits_as_dead_letters_until_the_catalogue_names_it(
        kafka, postgres, tmp_path, monkeypatch):
    path = tmp_path / "catalogue.yaml"
    path.write_text(CATALOGUE)
    use_catalogue(monkeypatch, path)
    order = {"order_id": 9001, "buyer_email": "bob@example.org", "total": 120, "state": "paid"}
    publish(kafka, [
        mysql_change(MYSQL_TOPIC, "customers", "c", None, BOB_SHOP, ts_ms=1_000, pos=154),
        mysql_change(MYSQL_ORDERS, "orders", "c", None, order, ts_ms=2_000, pos=300,
                     key_column="order_id"),
    ], partitions=1)
    stream_until_idle(CDC_STREAM, resources(kafka, postgres))

    with postgres.transaction() as cur:
        (letter,) = pending_dead_letters(cur, "cdc")
    assert letter["topic"] == MYSQL_ORDERS
    assert letter["reason"] == (
        f"topic '{MYSQL_ORDERS}' (source db=inventory, table=orders) is not a known source "
        f"table: add it under `sources:` in {path} (topics: [{MYSQL_ORDERS}]), then replay the "
        "dead letters")
    assert lookup(postgres, "shop:43")["sources"] == ["shop.customers:43"]

    path.write_text(CATALOGUE.replace("survivorship:", ORDERS.lstrip("\n") + "survivorship:"))
    code, out = customers_command(["dead-letters", "replay", "--source", "cdc", "--json"],
                                  postgres, kafka)
    report = json.loads(out)
    assert code == 0 and report["applied"] == 1 and report["still_failing"] == 0

    bob = lookup(postgres, "shop:43")
    assert sorted(bob["sources"]) == ["shop.customers:43", "shop.orders:9001"]
    assert bob["recent_orders"] == [{"order": 9001, "total": 120, "status": "paid",
                                     "source": "shop.orders:9001", "version_ts_ms": 2_000,
                                     "cdc_position": f"{MYSQL_ORDERS}/0/0"}]
    assert bob["last_interactions"][0]["summary"] == "order 9001 (paid)"
    code, _ = customers_command(["dead-letters", "replay", "--source", "cdc", "--json"],
                                  postgres, kafka)
    assert code == 0 and stored_state(postgres).live_rows["shop.orders:9001"] == order


def test_a_table_added_to_the_catalogue_of_a_running_stream_is_applied(kafka, postgres, tmp_path,
                                                                       monkeypatch):
    """No catalogue-wide `cdc_topics` here: the shop's topic is not read at all until the
    catalogue names it; then the running worker picks it up, without a restart."""
    billing_only = CATALOGUE.replace("cdc_topics: '(pgbill|mysqlshop)\\..+'\n", "")
    shop_entry = billing_only[billing_only.index("  - system: shop"):billing_only.index("survivorship:")]
    path = tmp_path / "catalogue.yaml"
    path.write_text(billing_only.replace(shop_entry, "").replace("[billing, shop]", "[billing]"))
    use_catalogue(monkeypatch, path)
    publish(kafka, [postgres_change("c", None, ANN_BILLING, ts_ms=1_000, lsn=2_000, tx_id=700),
                    mysql_change(MYSQL_TOPIC, "customers", "c", None, ANN_SHOP, ts_ms=2_000,
                                 pos=154)], partitions=1)
    stream_until_idle(CDC_STREAM, resources(kafka, postgres))
    assert set(stored_state(postgres).live_rows) == {"billing.accounts:17"}
    with postgres.transaction() as cur:
        assert pending_dead_letters(cur, "cdc") == []  # the shop's topic was not even read

    path.write_text(billing_only)  # the shop joins the catalogue
    deadline = time.monotonic() + 60
    while "shop.customers:42" not in stored_state(postgres).assignments:
        assert time.monotonic() < deadline, "the running stream never applied the new table"
        tick(CDC_STREAM, resources(kafka, postgres))  # keeps the worker alive
        time.sleep(0.5)
    state = stored_state(postgres)
    assert state.clusters == {frozenset({"billing.accounts:17", "shop.customers:42"})}
    assert lookup(postgres, "shop:42")["customer_id"] == lookup(postgres, "billing:17")["customer_id"]


def test_changed_identity_columns_relink_a_table_and_a_removed_table_is_refused_until_dropped(
        kafka, postgres, tmp_path, monkeypatch):
    # First the shop's e-mail column is not declared: its record shares nothing with billing's.
    nameless = CATALOGUE.replace("      email: [email_address]\n      phone: [mobile]\n", "")
    path = tmp_path / "catalogue.yaml"
    path.write_text(nameless)
    use_catalogue(monkeypatch, path)
    renamed = {**ANN_SHOP, "name": "A. Lee-Smith"}
    carl = {**ANN_BILLING, "account_id": 18, "first_name": "Carl", "last_name": "Berg",
            "email": "carl@example.net", "phone": None}
    publish(kafka, [postgres_change("c", None, ANN_BILLING, ts_ms=1_000, lsn=2_000, tx_id=700),
                    mysql_change(MYSQL_TOPIC, "customers", "c", None, renamed, ts_ms=2_000,
                                 pos=154)], partitions=1)
    stream_until_idle(CDC_STREAM, resources(kafka, postgres))
    assert stored_state(postgres).clusters == {frozenset({"billing.accounts:17"}),
                                               frozenset({"shop.customers:42"})}

    # The catalogue now names the e-mail column: the shop's records are relinked, once, with
    # the next micro-batch (here: another billing account arriving).
    path.write_text(CATALOGUE)
    publish(kafka, [postgres_change("c", None, carl, ts_ms=3_000, lsn=2_100, tx_id=702)],
            partitions=1)
    reported = materialisations(stream_until_idle(CDC_STREAM, resources(kafka, postgres)))
    assert reported["identity_graph"]["catalogue_requeued shop.customers"] == 1
    assert stored_state(postgres).clusters == {
        frozenset({"billing.accounts:17", "shop.customers:42"}), frozenset({"billing.accounts:18"})}
    assert link_and_refresh(postgres)[0].catalogue_changes == {}  # nothing queued a second time

    # The shop leaves the catalogue while its record is stored: refused, with what to do.
    path.write_text(CATALOGUE.replace(CATALOGUE[CATALOGUE.index("  - system: shop"):
                                                CATALOGUE.index("survivorship:")], "")
                    .replace("[billing, shop]", "[billing]"))
    with pytest.raises(RemovedSourceHasRecords,
                       match=r"table shop.customers is no longer in .*catalogue.yaml, but 1 of its"
                             r" records are stored: .*`rag-assets sources drop shop.customers --yes`"):
        link_and_refresh(postgres)
    out, err = io.StringIO(), io.StringIO()
    drop = argparse.Namespace(action="drop", file="shop.customers", yes=True)
    assert run_sources_command(drop, out, err, postgres) == 0
    assert "1 record(s) of shop.customers removed" in out.getvalue()
    link_and_refresh(postgres)
    state = stored_state(postgres)
    assert set(state.live_rows) == {"billing.accounts:17", "billing.accounts:18"}
    assert state.clusters == {frozenset({"billing.accounts:17"}), frozenset({"billing.accounts:18"})}
    assert lookup(postgres, "billing:17")["sources"] == ["billing.accounts:17"]
