"""Shared helpers of the Customer 360 integration tests.

* Building CDC messages by hand (Debezium with or without the schema wrapper, AWS DMS, raw
  bytes) and publishing them to chosen partitions.
* Driving the real path: `cdc_sensor` ticks → `materialize` of the three customer assets.
* Reading the final state back from PostgreSQL, and an **oracle**: the same Kafka log replayed
  through the pure in-memory implementations (`SourceState`, `InMemoryIdentityStore` +
  `IdentityGraph`, `build_profile`).
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from typing import Any

from dagster import DagsterInstance, materialize

from rag_assets.customers import source_store
from rag_assets.customers.assets import customer_profiles, identity_graph, source_records
from rag_assets.customers.cli_commands import add_parsers, customers_cli
from rag_assets.customers.cdc_apply import cdc_topic_pattern, parser_config
from rag_assets.customers.cdc_events import ChangeEvent, parse_cdc_record
from rag_assets.customers.identity_graph import IdentityGraph, InMemoryIdentityStore, node_from_record
from rag_assets.customers.profiles import build_profile
from rag_assets.customers.source_state import SourceState
from rag_assets.demo.debezium import KafkaMessage
from rag_assets.platform.kafka_ingest import rebuild_ranges
from sensors.customers import CDC_RANGES
from sensors.kafka_ranges import plan_tick

CUSTOMER_ASSETS = [source_records, identity_graph, customer_profiles]


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class Message:
    """A Kafka record to publish; `partition` None lets the producer choose by key."""

    topic: str  # logical topic, e.g. "cdc.crm.customers"
    key: bytes | None
    value: bytes | None
    partition: int | None = None


def key_of(pk: Any) -> bytes:
    return json.dumps({"id": pk}).encode()


def debezium(system: str, table: str, op: str, *, pk: Any = None, before: dict | None = None,
             after: dict | None = None, ts_ms: int, tx_id: int | None = None,
             lsn: int | None = None, wrapped: bool = False, partition: int | None = None,
             key: bytes | None | str = "auto") -> Message:
    envelope = {
        "before": before, "after": after, "op": op, "ts_ms": ts_ms + 3,
        "source": {"version": "2.7.3.Final", "connector": "postgresql", "name": "airline",
                   "ts_ms": ts_ms, "snapshot": "true" if op == "r" else "false", "db": system,
                   "schema": "public", "table": table, "txId": tx_id, "lsn": lsn, "xmin": None},
    }
    if wrapped:
        envelope = {"schema": {"type": "struct", "name": f"airline.public.{table}.Envelope"},
                    "payload": envelope}
    if key == "auto":
        key = None if pk is None else key_of(pk)
        if wrapped and pk is not None:
            key = json.dumps({"schema": {"type": "struct"}, "payload": {"id": pk}}).encode()
    return Message(f"cdc.{system}.{table}", key, json.dumps(envelope).encode(), partition)


def tombstone(system: str, table: str, pk: Any, partition: int | None = None) -> Message:
    return Message(f"cdc.{system}.{table}", key_of(pk), None, partition)


def dms(system: str, table: str, operation: str, data: dict | None, *, ts: str,
        tx_id: int | None = None, partition: int | None = None, key: bytes | None = None,
        record_type: str = "data") -> Message:
    message = {
        "data": data,
        "metadata": {"timestamp": ts, "record-type": record_type, "operation": operation,
                     "partition-key-type": "schema-table", "schema-name": "public",
                     "table-name": table, "transaction-id": tx_id},
    }
    # DMS keys by "schema.table" by default: the primary key comes from the row.
    return Message(f"cdc.{system}.{table}", key or json.dumps(f"public.{table}").encode(),
                   json.dumps(message).encode(), partition)


def publish(kafka, messages: Iterable[Message | KafkaMessage], partitions: int = 2,
            topic_configs: dict[str, str] | None = None, **producer_options) -> None:
    """Create the topics (if missing) and send the messages in order, then flush."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    messages = list(messages)
    topics = sorted({_real_topic(kafka, m) for m in messages})
    admin = KafkaAdminClient(**kafka.client_config())
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(t, partitions, 1, topic_configs=topic_configs or {})
                   for t in topics if t not in existing]
        if missing:
            admin.create_topics(missing)
    finally:
        admin.close()
    producer = kafka.producer(**producer_options)
    for m in messages:
        partition = getattr(m, "partition", None)
        producer.send(_real_topic(kafka, m), key=m.key, value=m.value, partition=partition)
    producer.flush()
    producer.close()


def _real_topic(kafka, message) -> str:
    # KafkaMessage (demo encoder) already carries the prefixed topic; Message is logical.
    return kafka.topic(message.topic) if isinstance(message, Message) else message.topic


# --------------------------------------------------------------------------- the real path


def sensor_tick(kafka, postgres, cursor: str | None = None, max_per_partition: int | None = None):
    """One evaluation of `cdc_sensor` (or of the same spec with a smaller batch bound)."""
    spec = CDC_RANGES if max_per_partition is None else replace(
        CDC_RANGES, name="cdc_sensor_small", max_per_partition=max_per_partition)
    with DagsterInstance.ephemeral() as instance:
        return plan_tick(spec, cursor, kafka, postgres, instance)


def materialize_customers(kafka, postgres, run_config: dict | None = None):
    result = materialize(CUSTOMER_ASSETS, resources={"kafka": kafka, "postgres": postgres},
                         run_config=run_config)
    assert result.success
    return result


def catch_up(kafka, postgres, max_per_partition: int | None = None, max_runs: int = 200) -> list:
    """Tick the sensor and run every requested run until nothing new; returns the results."""
    results, cursor = [], None
    for _ in range(max_runs):
        tick = sensor_tick(kafka, postgres, cursor, max_per_partition)
        cursor = tick.cursor
        if not tick.run_requests:
            return results
        for request in tick.run_requests:
            results.append(materialize_customers(kafka, postgres, request.run_config))
    raise AssertionError("the sensor never caught up")


def customers_command(args: list[str], postgres, kafka=None) -> tuple[int, str]:
    """`rag-assets customer …` / `dead-letters …` in process: (exit status, output)."""
    parser = argparse.ArgumentParser(prog="rag-assets")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    out = io.StringIO()
    code = customers_cli(parser.parse_args(args), postgres=postgres, kafka=kafka, out=out)
    return code, out.getvalue()


def metadata(result, asset: str = "source_records") -> dict[str, Any]:
    return {k: v.value for k, v in result.asset_materializations_for_node(asset)[0].metadata.items()}


@contextmanager
def other_schema(postgres, suffix: str = "b") -> Iterator:
    """A second PostgresResource on a schema of its own (dropped afterwards)."""
    from resources.postgres import PostgresResource

    other = PostgresResource(host=postgres.host, port=postgres.port, user=postgres.user,
                             password=postgres.password, database=postgres.database,
                             db_schema=f"{postgres.db_schema}_{suffix}")
    try:
        yield other
    finally:
        with other.transaction() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{other.db_schema}" CASCADE')


# --------------------------------------------------------------------------- state and oracle


@dataclass
class CustomerState:
    live_rows: dict[str, dict]  # "system.table:pk" -> row
    assignments: dict[str, str]  # record key -> customer id
    profiles: dict[str, dict]  # customer id -> profile (as stored: JSON)

    @property
    def clusters(self) -> set[frozenset[str]]:
        return clusters_of(self.assignments)


def clusters_of(assignments: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for key, customer_id in assignments.items():
        groups.setdefault(customer_id, set()).add(key)
    return {frozenset(g) for g in groups.values()}


def stored_state(postgres) -> CustomerState:
    with postgres.transaction() as cur:
        rows = {str(k): v for k, v in source_store.live_rows(cur).items()}
        cur.execute("SELECT record_key, customer_id FROM customer_assignments")
        assignments = dict(cur.fetchall())
        cur.execute("SELECT customer_id, profile FROM customer_profiles")
        profiles = dict(cur.fetchall())
    return CustomerState(rows, assignments, profiles)


def read_log(kafka) -> list[ChangeEvent]:
    """Every parsable event of every CDC topic, partition by partition in offset order."""
    events = []
    for rng in rebuild_ranges(kafka, cdc_topic_pattern()):
        for record in kafka.read_range(rng.topic, rng.partition, rng.start, rng.end):
            parsed = parse_cdc_record(kafka.logical_topic(record.topic), record.partition,
                                      record.offset, record.key, record.value, parser_config())
            if isinstance(parsed, ChangeEvent):
                events.append(parsed)
    return events


def oracle_graph(events: list[ChangeEvent]) -> tuple[SourceState, InMemoryIdentityStore]:
    """The source state and identity graph the event log gives, computed in memory."""
    source = SourceState()
    source.apply(events)
    store = InMemoryIdentityStore()
    changes = [c for key in sorted(source.records)
               if (c := node_from_record(source.records[key])) is not None]
    store.apply(IdentityGraph(store).apply(changes))
    return source, store


def stored_edges(postgres) -> set[tuple[str, str, str]]:
    with postgres.transaction() as cur:
        cur.execute("SELECT a_key, b_key, rule FROM identity_edges")
        return set(cur.fetchall())


def oracle_state(events: list[ChangeEvent], today: date | None = None) -> CustomerState:
    """The expected final state, computed in memory from the event log alone."""
    today = today or datetime.now(timezone.utc).date()
    source, store = oracle_graph(events)
    profiles = {}
    for customer_id, keys in store.clusters().items():
        live = [source.records[k] for k in keys if not source.records[k].deleted]
        if live:
            profiles[customer_id] = json.loads(json.dumps(build_profile(customer_id, live, today),
                                                          default=str))
    return CustomerState(
        {str(k): json.loads(json.dumps(v, default=str)) for k, v in source.live_rows().items()},
        {str(k): cid for k, cid in store.assignments.items()},
        profiles,
    )


def assert_matches_oracle(actual: CustomerState, expected: CustomerState, ids: bool = True) -> None:
    assert actual.live_rows == expected.live_rows
    assert actual.clusters == expected.clusters
    if ids:
        assert actual.assignments == expected.assignments
        assert actual.profiles == expected.profiles
    else:
        by_members = lambda state: {  # noqa: E731
            frozenset(k for k, c in state.assignments.items() if c == cid):
                {k: v for k, v in p.items() if k not in ("customer_id", "content_hash")}
            for cid, p in state.profiles.items()}
        assert by_members(actual) == by_members(expected)


def demo_messages(kafka, people: int = 60, changes: int = 200, seed: int = 11,
                  wrapped: frozenset = frozenset({("loyalty", "members")})) -> list[KafkaMessage]:
    """A realistic history: a snapshot of the four demo source systems, then streamed changes."""
    from rag_assets.demo.debezium import DebeziumEncoder
    from rag_assets.demo.people import generate_people
    from rag_assets.demo.source_systems import TABLES, SourceChangeGenerator, build_source_systems

    today = date(2025, 1, 15)
    population = generate_people(people, seed=seed, today=today)
    snapshot = build_source_systems(population, seed=seed, today=today)
    encoder = DebeziumEncoder(topic_prefix=kafka.topic_prefix, wrapped_tables=wrapped)
    ts = 1_736_900_000_000
    messages = []
    for system, table in TABLES:
        messages += encoder.snapshot(system, table, snapshot.rows(system, table), ts)
    generator = SourceChangeGenerator(snapshot, population, seed=seed, today=today)
    for i in range(changes):
        ts += 1_000
        moment = datetime.fromtimestamp(ts / 1000, timezone.utc)
        messages += encoder.change(generator.next_change(moment), ts)
    return messages
