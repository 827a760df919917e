"""A CDC workload for concurrent identity linkers, without Kafka: parsed change events with
partitions, applied partition set by partition set by `worker` threads that each also link.

Used by tests/integration/customers/test_parallel_linking.py and bench/parallel_linking.py.
"""

from __future__ import annotations

import threading
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from rag_assets.customers import cdc_apply, identity_linking, profile_refresh
from rag_assets.customers.assets import ensure_customer_schema
from rag_assets.customers.cdc_events import ChangeEvent, parse_cdc_record
from rag_assets.customers.identity_store import PostgresIdentityStore
from rag_assets.platform.db import drain
from rag_assets.platform.pg_connection import in_transaction
from tests.integration.customers.helpers import Message, debezium

PARTITIONS = 3
TS = 1_736_900_000_000


def _bridge(ts: int) -> tuple[list[Message], list[Message]]:
    """One person's records on three partitions, joined by identifiers they share — a CRM row
    (partition 0) and a booking (1) by email, the booking and a support ticket (2) by phone —
    then a booking change (1) that drops the email, and a ticket change (2) that drops the
    phone: the cluster is merged from records of three linkers and split again."""
    email, phone = "ana.bridge@example.com", "+44 20 7946 0999"
    crm = {"id": 9001, "first_name": "Ana", "last_name": "Bridge", "email": email,
           "phone": None, "date_of_birth": "1980-02-02", "country": "GB"}
    booking = {"id": 9002, "customer_email": email, "passenger_first_name": "Ana",
               "passenger_last_name": "Bridge", "phone": phone, "flight_no": "BA9"}
    ticket = {"id": 9003, "customer_email": None, "customer_phone": phone,
              "customer_name": "A Bridge", "subject": "seat"}
    merge = [debezium("crm", "customers", "c", pk=9001, after=crm, ts_ms=ts, partition=0),
             debezium("booking", "bookings", "c", pk=9002, after=booking, ts_ms=ts + 1,
                      partition=1),
             debezium("support", "tickets", "c", pk=9003, after=ticket, ts_ms=ts + 2, partition=2)]
    split = [debezium("booking", "bookings", "u", pk=9002, before=booking,
                      after={**booking, "customer_email": None}, ts_ms=ts + 3, partition=1),
             debezium("support", "tickets", "u", pk=9003, before=ticket,
                      after={**ticket, "customer_phone": None}, ts_ms=ts + 4, partition=2)]
    return merge, split


def _demo(people: int, changes: int, seed: int) -> list[Message]:
    from rag_assets.demo.debezium import DebeziumEncoder
    from rag_assets.demo.people import generate_people
    from rag_assets.demo.source_systems import TABLES, SourceChangeGenerator, build_source_systems

    today = date(2025, 1, 15)
    population = generate_people(people, seed=seed, today=today)
    snapshot = build_source_systems(population, seed=seed, today=today)
    encoder = DebeziumEncoder()
    encoded = [m for system, table in TABLES
               for m in encoder.snapshot(system, table, snapshot.rows(system, table), TS)]
    generator = SourceChangeGenerator(snapshot, population, seed=seed, today=today)
    for i in range(changes):
        ts = TS + 1_000 * (i + 1)
        encoded += encoder.change(generator.next_change(datetime.fromtimestamp(
            ts / 1000, timezone.utc)), ts)
    return [Message(m.topic, m.key, m.value) for m in encoded]


def workload(seed: int = 11, people: int = 40, changes: int = 150) -> list[ChangeEvent]:
    """The demo's snapshot and changes (partition by key), with the bridge's merge in the
    first third and its split in the last (see `_bridge`), as parsed events."""
    demo = _demo(people, changes, seed)
    merge, split = _bridge(TS + 500)
    third = len(demo) // 3
    messages = demo[:third] + merge + demo[third:2 * third] + split + demo[2 * third:]
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    events = []
    for m in messages:
        partition = m.partition if m.partition is not None else zlib.crc32(m.key) % PARTITIONS
        offset = offsets[(m.topic, partition)]
        offsets[(m.topic, partition)] += 1
        event = parse_cdc_record(m.topic, partition, offset, m.key, m.value)
        assert isinstance(event, ChangeEvent), event
        events.append(event)
    return events


@dataclass
class Worker:
    """A stand-in for a stream worker: applies the events of its partitions in chunks, each in
    a transaction, and links after each chunk with batches of `batch` records."""

    events: list[ChangeEvent]
    chunk: int = 12
    batch: int = 4
    stats: identity_linking.LinkStats = field(default_factory=identity_linking.LinkStats)
    error: BaseException | None = None

    def run(self, postgres, start: threading.Barrier) -> None:
        store = PostgresIdentityStore()
        try:
            with postgres.connection() as conn:
                start.wait()
                for i in range(0, len(self.events), self.chunk):
                    with in_transaction(conn) as cur:
                        cdc_apply.apply_events(cur, self.events[i:i + self.chunk],
                                               cdc_apply.ApplyStats())
                    self._link(conn, store)
                self._link(conn, store)
        except BaseException as error:  # noqa: BLE001 — re-raised by run_workers
            self.error = error

    def _link(self, conn, store: PostgresIdentityStore) -> None:
        while True:
            with in_transaction(conn) as cur:
                if not identity_linking.link_batch(cur, self.stats, limit=self.batch, store=store):
                    return


def run_workers(postgres, events: list[ChangeEvent], workers: int = PARTITIONS,
                **options) -> list[Worker]:
    """Run `workers` workers at once, worker i on the partitions p with p % workers == i, then
    link what is left and build the profiles."""
    with postgres.transaction() as cur:
        ensure_customer_schema(cur, postgres)
    crew = [Worker([e for e in events if e.position.partition % workers == i], **options)
            for i in range(workers)]
    start = threading.Barrier(workers)
    threads = [threading.Thread(target=w.run, args=(postgres, start)) for w in crew]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for worker in crew:
        if worker.error is not None:
            raise worker.error
    drain(postgres, lambda cur: identity_linking.link_batch(cur, identity_linking.LinkStats()))
    drain(postgres, lambda cur: profile_refresh.refresh_batch(cur, profile_refresh.RefreshStats()))
    return crew
