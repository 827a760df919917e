"""CDC throughput: a backlog of change events caught up from Kafka into customer profiles.

A backlog of Debezium events over the four demo tables (`crm.customers`, `loyalty.members`,
`booking.bookings`, `support.tickets`; 4 partitions each, keyed by primary key) is published
first: a snapshot of every row (op "r"), then streamed updates, inserts, deletes with their
tombstones. Customers share e-mails and phones across tables (in varied formats), so the
identity graph has real linking to do. Then the clock starts and the real path runs until it
has caught up: `cdc_sensor` ticks (at most `max_per_partition` offsets per partition per run)
and each requested run materialises `source_records` → `identity_graph` → `customer_profiles`
in process against the local Kafka and PostgreSQL.

    .venv/bin/python bench/cdc_throughput.py [--events 1000000] [--partitions 4]
        [--max-per-partition N] [--mode runs|streaming] [--catch-up-events N]
        [--profile out.prof] [--keep]

Prints events/s (end to end, identity resolution and profiles included), per-stage time (runs), and
peak memory (max RSS of this process; generation is streamed, so the backlog is not held).
Uses its own topic prefix and PostgreSQL schema and removes them at the end; starts the local
services when they are not running and stops the ones it started.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra import services  # noqa: E402
from infra.processes import interrupt_on_termination  # noqa: E402
from infra.settings import InfraSettings, connection_env  # noqa: E402
from sensor_runs import customer_runs, drop_bench_data  # noqa: E402  (bench/ is the script's own directory)

FIRST = ["Alice", "Bob", "Carla", "Dan", "Eve", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kate",
         "Liam", "Maya", "Noor", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera",
         "Wei", "Xena", "Yusuf", "Zoe"]
LAST = ["Moreau", "Stone", "Ruiz", "Ng", "Okafor", "Smith", "Jones", "Khan", "Garcia", "Rossi",
        "Novak", "Silva", "Berg", "Kowalski", "Murphy", "Tanaka", "Haddad", "Larsen", "Patel", "Wu"]
SUFFIXES = ["", "son", "ley", "ford", "wood", "man", "ton", "er", "ini", "ova", "berg", "stein",
            "ham", "well", "by", "field", "more", "croft", "ridge", "dale"]
CITIES = [("Leeds", "LS1"), ("York", "YO1"), ("Bath", "BA1"), ("Derby", "DE1"), ("Hull", "HU1"),
          ("Ely", "CB7")]  # with the outward part of their postcodes
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters UK inward codes use
TABLES = [("crm", "customers"), ("loyalty", "members"), ("booking", "bookings"), ("support", "tickets")]


class Backlog:
    """Streams Debezium messages of a population of customers; O(1) per event."""

    def __init__(self, events: int, seed: int, prefix: str) -> None:
        from rag_assets.demo.debezium import DebeziumEncoder

        self.rng = random.Random(seed)
        self.target = events
        self.encoder = DebeziumEncoder(topic_prefix=prefix, tx_id=1_000, lsn=10_000_000,
                                       wrapped_tables=frozenset({("loyalty", "members")}))
        # About 6 rows per customer; a third of the events are the snapshot.
        self.customers = max(10, events // 18)
        self.rows: dict[tuple[str, str], dict[int, dict]] = {t: {} for t in TABLES}
        self.keys: dict[tuple[str, str], list[int]] = {t: [] for t in TABLES}
        self.next_id = {t: base for t, base in zip(TABLES, (1, 7_000_000, 5_000_000, 9_000_000))}
        self.ts = 1_736_000_000_000
        self.ops: Counter = Counter()

    def person(self, i: int) -> dict:
        rng = random.Random(i)
        # Thousands of distinct surnames, as in a real population: with only a few dozen, fuzzy
        # blocks (name-based) would hold hundreds of unrelated people each.
        first = rng.choice(FIRST)
        last = rng.choice(LAST) + rng.choice(SUFFIXES) + rng.choice(("", "a", "e", "i", "o", "y"))
        city, postcode = self.address(rng)
        return {"first": first, "last": last, "email": f"{first}.{last}.{i}@example.org".lower(),
                "phone": f"+4477{i:08d}"[:13], "dob": 3000 + (i * 37) % 15000, "city": city,
                "postcode": postcode, "street": f"{1 + i % 200} {last} Road", "nid": f"QQ{i:07d}X"}

    @staticmethod
    def address(rng: random.Random) -> tuple[str, str]:
        """A city and a full postcode in it. A unit postcode covers ~15 addresses, so a
        population spreads over thousands of them (with one postcode per city, postcode blocks
        held a sixth of everyone with the same initial, as unrealistic as a few surnames)."""
        city, outward = rng.choice(CITIES)
        inward = f"{rng.randrange(10)}{rng.choice(INWARD_LETTERS)}{rng.choice(INWARD_LETTERS)}"
        return city, f"{outward} {inward}"

    def row(self, table: tuple[str, str], pk: int, i: int) -> dict:
        p = self.person(i)
        rng = self.rng
        if table == ("crm", "customers"):
            return {"id": pk, "first_name": p["first"], "last_name": p["last"], "email": p["email"],
                    "phone": p["phone"], "date_of_birth": p["dob"], "address_line1": p["street"],
                    "city": p["city"], "postcode": p["postcode"], "country": "GB",
                    "national_id": p["nid"]}
        if table == ("loyalty", "members"):
            return {"id": pk, "member_number": f"SKL-{i:09d}", "full_name": f"{p['first']} {p['last']}",
                    "email": p["email"].upper(), "phone": "0" + p["phone"][3:], "tier": "Blue",
                    "points": rng.randrange(0, 50_000), "date_of_birth": None}
        if table == ("booking", "bookings"):
            return {"id": pk, "customer_email": p["email"], "passenger_first_name": p["first"].upper(),
                    "passenger_last_name": p["last"].upper(), "phone": None,
                    "flight_no": f"SK{rng.randrange(100, 999)}", "origin": "LHR", "destination": "JFK",
                    "departure_date": 20_100 + rng.randrange(0, 400), "status": "confirmed",
                    "created_at": "2025-01-02T10:00:00.000000Z"}
        return {"id": pk, "customer_email": p["email"] if rng.random() < 0.7 else None,
                "customer_phone": p["phone"] if rng.random() < 0.5 else None,
                "customer_name": f"{p['last']}, {p['first']}", "subject": "Lost bag", "status": "open",
                "opened_at": "2025-01-10T09:00:00.000000Z", "updated_at": "2025-01-10T09:00:00.000000Z"}

    def _new_row(self, table) -> dict:
        pk = self.next_id[table]
        self.next_id[table] += 1
        row = self.row(table, pk, self.rng.randrange(self.customers))
        self.rows[table][pk] = row
        self.keys[table].append(pk)
        return row

    def messages(self):
        from rag_assets.demo.source_systems import RowChange

        sent = 0
        per_customer = {("crm", "customers"): 1.0, ("loyalty", "members"): 0.6,
                        ("booking", "bookings"): 2.5, ("support", "tickets"): 1.2}
        for table in TABLES:  # the snapshot
            count = int(self.customers * per_customer[table])
            rows = []
            for n in range(count):
                pk = self.next_id[table]
                self.next_id[table] += 1
                row = self.row(table, pk, n % self.customers)
                self.rows[table][pk] = row
                self.keys[table].append(pk)
                rows.append(row)
            for message in self.encoder.snapshot(*table, rows, self.ts):
                self.ops["r"] += 1
                yield message
                sent += 1
        while sent < self.target:  # the stream
            self.ts += 7
            table = self.rng.choices(TABLES, weights=(3, 3, 4, 3))[0]
            draw = self.rng.random()
            keys = self.keys[table]
            if draw < 0.08 or not keys:
                row = self._new_row(table)
                change = RowChange(*table, "c", row["id"], None, row, "new")
            elif draw < 0.11:
                index = self.rng.randrange(len(keys))
                pk = keys[index]
                keys[index] = keys[-1]
                keys.pop()
                before = self.rows[table].pop(pk)
                change = RowChange(*table, "d", pk, before, None, "delete")
            else:
                pk = keys[self.rng.randrange(len(keys))]
                before = self.rows[table][pk]
                after = dict(before)
                if table == ("crm", "customers"):
                    city, postcode = self.address(self.rng)
                    after.update(city=city, postcode=postcode)
                elif table == ("loyalty", "members"):
                    after["points"] = before["points"] + self.rng.randrange(10, 500)
                elif table == ("booking", "bookings"):
                    after["status"] = self.rng.choice(("confirmed", "checked-in", "cancelled"))
                else:
                    after["status"] = self.rng.choice(("open", "pending", "resolved"))
                self.rows[table][pk] = after
                change = RowChange(*table, "u", pk, before, after, "update")
            for message in self.encoder.change(change, self.ts):
                self.ops[message.op] += 1
                yield message
                sent += 1


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-per-partition", type=int, default=None,
                        help="default: the bound of the product's cdc_sensor")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mode", choices=("runs", "streaming"), default="runs",
                        help="runs: cdc_sensor's runs (RAG_SENSOR_MODE=runs); streaming: the "
                             "cdc_stream worker's micro-batches (the default deployment)")
    parser.add_argument("--catch-up-events", type=int, default=None,
                        help="streaming: events applied before linking while a poll's worth or "
                             "more is behind (default: the worker's own; 2000 = link after every "
                             "poll)")
    parser.add_argument("--profile", default=None, help="write a cProfile of the catch-up here")
    parser.add_argument("--keep", action="store_true",
                        help="keep the PostgreSQL schema and topics afterwards (to inspect them)")
    args = parser.parse_args()
    interrupt_on_termination()

    settings = InfraSettings.from_env()
    started = services.up(settings)
    env = connection_env(settings)
    os.environ.update(env)
    try:
        return run(args, env, started)
    finally:
        if started:
            services.down(settings, only=set(started))


def add_run_figures(result, stage_s: dict, totals: Counter) -> None:
    for event in result.get_step_success_events():
        stage_s[event.step_key] += event.event_specific_data.duration_ms / 1000
    for asset in ("source_records", "identity_graph", "customer_profiles"):
        meta = result.asset_materializations_for_node(asset)[0].metadata
        for key in ("events_read", "events_applied", "dead_letters",
                    "records_linked", "profiles_written"):
            if key in meta:
                totals[key] += meta[key].value


def report_progress(label: str, done: int, started_at: float) -> None:
    elapsed = time.perf_counter() - started_at
    print(f"  {label}: {done} events in {elapsed:.0f} s ({done / elapsed:.0f}/s)", flush=True)


def streamed_steps(kafka, postgres, catch_up_events: int):
    """The `cdc_stream` worker's loop, in this process, until caught up: yields the events
    read by each step (its figures per asset go to the lineage outbox, as in the product)."""
    from contextlib import closing

    from rag_assets.customers.streaming import CdcMicroBatches
    from rag_assets.platform.micro_batch import MicroBatchSession

    with postgres.connection() as conn:
        session = MicroBatchSession(conn, "cdc_stream", f"bench-{uuid.uuid4().hex[:8]}")
        with closing(CdcMicroBatches(session, kafka, postgres,
                                     catch_up_events=catch_up_events)) as batches:
            while True:
                read = batches.step()
                if read:
                    yield read
                elif batches.lag().metadata["lag_events"] == 0:
                    return


def run(args, env, started) -> int:
    from resources.kafka import kafka_from_env
    from resources.postgres import PostgresResource
    from rag_assets.customers.streaming import CATCH_UP_EVENTS, POLL_EVENTS
    from sensors.customers import CDC_RANGES

    tag = uuid.uuid4().hex[:8]
    kafka = kafka_from_env(topic_prefix=f"bench_cdc_{tag}.", env=env)
    postgres = PostgresResource(host=env["PGHOST"], port=int(env["PGPORT"]), user=env["PGUSER"],
                                password=env["PGPASSWORD"], database=env["PGDATABASE"],
                                db_schema=f"bench_cdc_{tag}")
    topics = [kafka.topic(f"cdc.{s}.{t}") for s, t in TABLES]
    # The product's cdc_sensor, with the batch bound of this run.
    spec = CDC_RANGES if args.max_per_partition is None else replace(
        CDC_RANGES, max_per_partition=args.max_per_partition)
    catch_up = args.catch_up_events or CATCH_UP_EVENTS
    try:
        kafka.create_topics(topics, partitions=args.partitions)
        publish_started = time.perf_counter()
        backlog = Backlog(args.events, args.seed, kafka.topic_prefix)
        producer = kafka.producer(linger_ms=50, batch_size=256 * 1024, compression_type="gzip")
        published = 0
        for message in backlog.messages():
            producer.send(message.topic, key=message.key, value=message.value)
            published += 1
        producer.flush()
        producer.close()
        publish_s = time.perf_counter() - publish_started
        rss_before = max_rss_mb()
        print(f"published {published} events in {publish_s:.0f} s "
              f"({dict(backlog.ops)}); max RSS so far {rss_before:.0f} MB", flush=True)

        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        resources = {"kafka": kafka, "postgres": postgres}
        stage_s: dict[str, float] = defaultdict(float)
        totals: Counter = Counter()
        runs = 0
        started_at = time.perf_counter()
        if args.mode == "runs":
            for result in customer_runs(spec, resources):
                runs += 1
                add_run_figures(result, stage_s, totals)
                report_progress(f"run {runs}", totals["events_read"], started_at)
        else:
            for read in streamed_steps(kafka, postgres, catch_up):
                runs += 1
                totals["events_read"] += read
                report_progress(f"step {runs}", totals["events_read"], started_at)
        elapsed = time.perf_counter() - started_at
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        with postgres.transaction() as cur:
            cur.execute("SELECT count(*) FROM source_records WHERE row_data IS NOT NULL")
            live = cur.fetchone()[0]
            cur.execute("SELECT count(DISTINCT customer_id), count(*) FROM customer_assignments")
            customers, assigned = cur.fetchone()
            cur.execute("SELECT count(*) FROM identity_edges")
            edges = cur.fetchone()[0]
    finally:
        if args.keep:
            print(f"kept schema {postgres.db_schema} and topics {kafka.topic_prefix}*", flush=True)
        else:
            drop_bench_data(postgres, kafka, topics)

    if args.mode == "runs":
        batching = f"max {spec.max_per_partition} offsets/partition/run"
        work = (f"runs: {runs}; events read {totals['events_read']}, applied "
                f"{totals['events_applied']}, dead letters {totals['dead_letters']}; records linked "
                f"{totals['records_linked']}, profiles written {totals['profiles_written']}")
    else:
        batching = (f"cdc_stream steps: polls of {POLL_EVENTS} events, up to {catch_up} "
                    f"applied before linking")
        work = f"steps: {runs}; events read {totals['events_read']}"
    print(f"conditions: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; local Kafka 4.1 (KRaft) and PostgreSQL; "
          f"{args.partitions} partitions x {len(TABLES)} topics, {batching}; "
          f"services started here: {', '.join(started) or 'none'}")
    print(work)
    print(f"state: {live} live records, {assigned} assigned to {customers} customers, {edges} edges")
    if stage_s:
        print("stage time: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(stage_s.items())))
    print(f"peak memory (max RSS of this process; the profile helpers are not counted):"
          f" {max_rss_mb():.0f} MB (after publishing: {rss_before:.0f} MB)")
    print(f"events={totals['events_read']} seconds={elapsed:.1f} events_per_s={totals['events_read'] / elapsed:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
