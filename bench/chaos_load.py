"""A sustained load of CDC, feedback and documents that keeps its own ground truth, and the
oracle that compares the product's end state with it.

The generator drives only the product's public inputs — Debezium JSON on `cdc.<system>.<table>`
topics, turns on `app.feedback`, Markdown objects in the knowledge bucket — and records what it
sent: each source record's final values and the person it belongs to, each turn with its hour
and rating, each document's final version and its number of sections.

It is built so the expected end state follows from that record alone, without the product's
parse / link / profile / chunk code:

* **People never merge, records of one person always do.** A person's records (CRM customer and
  loyalty member always, bookings and support tickets sometimes) share one e-mail address that
  no other person has; no record carries a birth date, address, postcode or city, so names
  (which alone never link) are the only fuzzy evidence two people could share.
* **Every turn counts once.** Turn ratings are scores 1-5 or none, so per hour and model the
  KPIs must show `turns` = turns sent, `rated_turns` = scored turns, `mean_rating` x
  `rated_turns` = the sum of the scores, `positive_ratings` = scores >= 4 (the contract of
  `app.feedback`, docs in `rag_assets/feedback/events.py`). Any turn applied twice doubles them.
* **A document of n headed one-sentence sections is n chunks** (chunks never cross a heading).

Effects that would double are compared (KPI sums, lake rows per turn, chunk rows per
document), never the product's ledger.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

CDC_TABLES = (("crm", "customers"), ("loyalty", "members"), ("booking", "bookings"),
              ("support", "tickets"))
FIRST_PK = {("crm", "customers"): 1, ("loyalty", "members"): 1, ("booking", "bookings"): 1,
            ("support", "tickets"): 1}
PARTITIONS = 3
FEEDBACK_TOPIC = "app.feedback"
DOC_PREFIX = "knowledge-base/chaos/"
GIVEN = ("Ada", "Brio", "Cato", "Dara", "Eko", "Faye", "Gus", "Hale", "Ines", "Jory", "Kit", "Lio")
WORDS = ("baggage", "lounge", "refund", "upgrade", "meal", "seat", "visa", "pet", "infant",
         "delay", "transfer", "check-in")


def _surname(index: int) -> str:
    """A surname unique to person `index` ("Zabac", "Zabad", ...), so names never agree."""
    letters = ""
    n = index
    for _ in range(4):
        n, digit = divmod(n, 26)
        letters += "abcdefghijklmnopqrstuvwxyz"[digit]
    return "Zo" + letters


@dataclass
class Person:
    index: int
    email: str
    records: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass
class GroundTruth:
    """What the generator sent, final values only (thread-safe through the generator's lock)."""

    rows: dict[tuple[str, str, int], dict | None] = field(default_factory=dict)  # None: deleted
    person_of: dict[tuple[str, str, int], int] = field(default_factory=dict)
    turns: dict[tuple[str, int], tuple[datetime, str, int | None]] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)  # key -> sections of final version
    document_etags: dict[str, str] = field(default_factory=dict)
    # (logical topic, partition) -> [(offset, monotonic send time)] of acknowledged sends
    sends: dict[tuple[str, int], list[tuple[int, float]]] = field(
        default_factory=lambda: defaultdict(list))


class ChaosLoad(threading.Thread):
    """Sends `cdc_rate` CDC changes, `feedback_rate` turns per second and a document every
    `document_every` seconds until stopped. `pause_kafka()` / `pause_s3()` hold sends (and wait
    for every Kafka send in flight to be acknowledged) while a service is killed, so each
    change is either acknowledged before the kill or sent after the restart: the harness tests
    the pipeline, not the producer client's retries."""

    def __init__(self, kafka, s3_client, bucket: str, *, seed: int, run: str,
                 cdc_rate: float = 50.0, feedback_rate: float = 10.0,
                 document_every: float = 15.0, documents: int = 4,
                 partitions: int = PARTITIONS) -> None:
        super().__init__(daemon=True, name="chaos-load")
        self.kafka, self.s3, self.bucket, self.run_tag = kafka, s3_client, bucket, run
        self.rng = random.Random(seed)
        self.cdc_rate, self.feedback_rate = cdc_rate, feedback_rate
        self.partitions = partitions
        self.document_every, self.document_names = document_every, documents
        self.truth = GroundTruth()
        self.people: list[Person] = []
        self.next_pk = dict(FIRST_PK)
        self.lsn = 1_000_000
        self.turn_numbers: Counter = Counter()
        self.sent: Counter = Counter()
        self.errors: list[str] = []
        self.stop_event = threading.Event()
        self._kafka_open = threading.Event()
        self._kafka_open.set()
        self._s3_open = threading.Event()
        self._s3_open.set()
        self._lock = threading.Lock()
        self._producer = None
        self._pending: list = []

    # ------------------------------------------------------------------ control

    def start_topics(self) -> None:
        """Create the CDC and feedback topics with `partitions` partitions each."""
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic

        topics = [self.kafka.topic(f"cdc.{s}.{t}") for s, t in CDC_TABLES]
        topics.append(self.kafka.topic(FEEDBACK_TOPIC))
        admin = KafkaAdminClient(**self.kafka.client_config())
        try:
            existing = set(admin.list_topics())
            missing = [NewTopic(t, self.partitions, 1) for t in topics if t not in existing]
            if missing:
                admin.create_topics(missing)
        finally:
            admin.close()

    def pause_kafka(self) -> None:
        self._kafka_open.clear()
        with self._lock:
            self._settle_sends()

    def resume_kafka(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None  # a new client after a broker restart
        self._kafka_open.set()

    def pause_s3(self) -> None:
        self._s3_open.clear()
        with self._lock:
            pass  # an upload in progress finishes under the lock

    def resume_s3(self) -> None:
        self._s3_open.set()

    def finish(self) -> None:
        self.stop_event.set()
        if self.ident is not None:  # started
            self.join(timeout=60)
        with self._lock:
            self._settle_sends()
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None

    def send_cdc_backlog(self, changes: int, people: int = 20) -> None:
        """Send `changes` CDC changes at once (after `people` first persons), as fast as the
        broker acknowledges them: a backlog whose content depends on the seed alone. (Unlike the
        harness's sends, these are retried: a topic just created may not have its leaders yet.)"""
        self._producer = self.kafka.producer(acks="all", retries=10, enable_idempotence=True)
        self._seed_people(people)
        for _ in range(changes):
            with self._lock:
                self._cdc_change()
                if len(self._pending) >= 500:
                    self._settle_sends()
        with self._lock:
            self._settle_sends()

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        now = time.monotonic()
        if self.cdc_rate > 0:
            self._seed_people(20)
        next_cdc = now if self.cdc_rate > 0 else float("inf")
        next_turn = now if self.feedback_rate > 0 else float("inf")
        next_doc = time.monotonic() if self.document_names else float("inf")
        while not self.stop_event.is_set():
            now = time.monotonic()
            try:
                with self._lock:
                    if now >= next_cdc and self._kafka_open.is_set():
                        self._cdc_change()
                        next_cdc = max(next_cdc + 1 / self.cdc_rate, now - 1)
                    if now >= next_turn and self._kafka_open.is_set():
                        self._turn()
                        next_turn = max(next_turn + 1 / self.feedback_rate, now - 1)
                    if now >= next_doc and self._s3_open.is_set():
                        self._document()
                        next_doc = now + self.document_every
                    if len(self._pending) > 8:  # keeps `pause_kafka` to a few milliseconds
                        self._settle_sends()
            except Exception as error:  # reported by the harness; the loop must not stop
                self.errors.append(f"{type(error).__name__}: {error}")
                time.sleep(0.5)
            time.sleep(max(0.0, min(next_cdc, next_turn) - time.monotonic()))

    # ------------------------------------------------------------------ CDC

    def _seed_people(self, count: int) -> None:
        with self._lock:
            for _ in range(count):
                self._new_person()

    def _new_person(self) -> None:
        index = len(self.people)
        person = Person(index, f"p{index}.{self.run_tag}@chaos.example")
        self.people.append(person)
        given, surname = GIVEN[index % len(GIVEN)], _surname(index)
        self._insert(person, ("crm", "customers"), {
            "first_name": given, "last_name": surname, "email": person.email, "phone": None,
            "date_of_birth": None, "address_line1": None, "city": None, "postcode": None,
            "country": None, "national_id": None})
        self._insert(person, ("loyalty", "members"), {
            "member_number": f"CX{index:08d}", "full_name": f"{given} {surname}",
            "email": person.email, "phone": None, "tier": "Blue", "points": 0,
            "date_of_birth": None})

    def _insert(self, person: Person, table: tuple[str, str], values: dict) -> None:
        pk = self.next_pk[table]
        self.next_pk[table] += 1
        key = (*table, pk)
        person.records.append(key)
        self.truth.person_of[key] = person.index
        self._send_change(key, "c", {"id": pk, **values})

    def _cdc_change(self) -> None:
        roll = self.rng.random()
        person = self.rng.choice(self.people)
        live = [k for k in person.records if self.truth.rows.get(k) is not None]
        if roll < 0.04:
            self._new_person()
        elif roll < 0.12:
            self._insert(person, ("booking", "bookings"), self._booking(person))
        elif roll < 0.17:
            self._insert(person, ("support", "tickets"), self._ticket(person))
        elif roll < 0.20 and any(k[:2] == ("booking", "bookings") for k in live):
            key = self.rng.choice([k for k in live if k[:2] == ("booking", "bookings")])
            self._send_change(key, "d", None)
        else:
            key = self.rng.choice(live)
            self._send_change(key, "u", {**self.truth.rows[key], **self._update(key)})

    def _booking(self, person: Person) -> dict:
        row = self.truth.rows[person.records[0]]
        return {"customer_email": person.email, "passenger_first_name": row["first_name"],
                "passenger_last_name": row["last_name"], "phone": None,
                "flight_no": f"CX{self.rng.randrange(1, 999)}", "origin": "LHR",
                "destination": self.rng.choice(("JFK", "CDG", "DXB")), "departure_date": None,
                "status": "confirmed", "created_at": None}

    def _ticket(self, person: Person) -> dict:
        row = self.truth.rows[person.records[0]]
        return {"customer_email": person.email, "customer_phone": None,
                "customer_name": f"{row['first_name']} {row['last_name']}",
                "subject": f"About my {self.rng.choice(WORDS)}", "status": "open",
                "opened_at": None, "updated_at": None}

    def _update(self, key: tuple[str, str, int]) -> dict:
        system = key[0]
        if system == "loyalty":
            return {"points": self.rng.randrange(0, 200_000),
                    "tier": self.rng.choice(("Blue", "Silver", "Gold", "Platinum"))}
        if system == "booking":
            return {"status": self.rng.choice(("confirmed", "checked_in", "flown", "cancelled")),
                    "flight_no": f"CX{self.rng.randrange(1, 999)}"}
        if system == "support":
            return {"status": self.rng.choice(("open", "pending", "resolved", "closed"))}
        # Not the city: with equal names it is evidence enough to join two people.
        return {"country": self.rng.choice(("GB", "IE", "FR", "DE", None))}

    def _send_change(self, key: tuple[str, str, int], op: str, after: dict | None) -> None:
        system, table, pk = key
        before = self.truth.rows.get(key)
        self.lsn += 64
        ts_ms = int(time.time() * 1000)
        envelope = {
            "before": before if op in ("u", "d") else None, "after": after, "op": op,
            "ts_ms": ts_ms + 1,
            "source": {"version": "2.7.3.Final", "connector": "postgresql", "name": "chaos",
                       "ts_ms": ts_ms, "snapshot": "false", "db": system, "schema": "public",
                       "table": table, "txId": self.lsn // 64, "lsn": self.lsn, "xmin": None},
        }
        topic = f"cdc.{system}.{table}"
        record_key = json.dumps({"id": pk}).encode()
        self._send(topic, record_key, json.dumps(envelope).encode())
        if op == "d":
            self._send(topic, record_key, None)  # the tombstone Debezium writes after a delete
        self.truth.rows[key] = after
        self.sent["cdc"] += 1

    # ------------------------------------------------------------------ feedback

    def _turn(self) -> None:
        conversation = f"chaos-{self.run_tag}-{self.rng.randrange(40)}"
        self.turn_numbers[conversation] += 1
        number = self.turn_numbers[conversation]
        now = datetime.now(timezone.utc)
        rating = self.rng.choice((None, None, 1, 2, 3, 4, 5))
        model = f"chaos-{self.run_tag}-m{self.rng.randrange(2)}"
        event = {"conversation_id": conversation, "turn_id": number, "customer_ref": None,
                 "ts": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                 "question": "Can I bring my bike?", "answer": "Yes, as checked baggage.",
                 "model_id": model, "latency_ms": 300.0, "retrieved_ids": [],
                 "rating": rating, "comment": None}
        self._send(FEEDBACK_TOPIC, conversation.encode(), json.dumps(event).encode())
        hour = now.replace(minute=0, second=0, microsecond=0)
        self.truth.turns[(conversation, number)] = (hour, model, rating)
        self.sent["turns"] += 1

    # ------------------------------------------------------------------ documents

    def _document(self) -> None:
        key = f"{DOC_PREFIX}guide-{self.rng.randrange(self.document_names)}.md"
        sections = self.rng.randrange(2, 7)
        revision = self.sent["documents"]
        body = "\n\n".join(
            f"## Topic {i} {self.rng.choice(WORDS)}\n\nRevision {revision} says the "
            f"{self.rng.choice(WORDS)} desk opens at {6 + i}:00." for i in range(sections))
        etag = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body.encode())["ETag"]
        self.truth.documents[key] = sections
        self.truth.document_etags[key] = etag.strip('"')
        self.sent["documents"] += 1

    # ------------------------------------------------------------------ sends

    def _send(self, topic: str, key: bytes, value: bytes | None) -> None:
        if self._producer is None:
            self._producer = self.kafka.producer(acks="all", retries=0)
        sent_at = time.monotonic()
        future = self._producer.send(self.kafka.topic(topic), key=key, value=value)
        self._pending.append((topic, sent_at, future))

    def _settle_sends(self) -> None:
        """Wait for every send in flight; a send that failed is an error of the harness."""
        for topic, sent_at, future in self._pending:
            metadata = future.get(timeout=30)
            self.truth.sends[(topic, metadata.partition)].append((metadata.offset, sent_at))
        self._pending.clear()

    def send_times(self) -> dict[tuple[str, int], list[tuple[int, float]]]:
        with self._lock:
            self._settle_sends()
            return {tp: list(sends) for tp, sends in self.truth.sends.items()}


# ---------------------------------------------------------------------- the oracle


@dataclass
class Verdict:
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.lost and not self.doubled


def compare(truth: GroundTruth, actual: dict) -> Verdict:
    """`actual` is what `read_actual` read from the product's stores."""
    verdict = compare_customers(truth, actual)
    _compare_feedback(truth, actual, verdict)
    _compare_documents(truth, actual, verdict)
    return verdict


def compare_feedback(truth: GroundTruth, actual: dict) -> Verdict:
    """The feedback part alone: KPI sums per hour and model, lake rows per turn."""
    verdict = Verdict()
    _compare_feedback(truth, actual, verdict)
    return verdict


def compare_customers(truth: GroundTruth, actual: dict) -> Verdict:
    """The CDC part alone: records, and records -> persons -> customers with profiles."""
    verdict = Verdict()
    _compare_records(truth, actual, verdict)
    _compare_partition(truth, actual, verdict)
    return verdict


def _record_key(key: tuple[str, str, int]) -> str:
    system, table, pk = key
    return f"{system}.{table}:{pk}"


def _compare_records(truth: GroundTruth, actual: dict, verdict: Verdict) -> None:
    stored = actual["records"]
    for key, row in truth.rows.items():
        have = stored.get(_record_key(key))
        if row is None:
            if have is not None:
                verdict.lost.append(f"record {_record_key(key)}: delete not applied")
            continue
        if have is None:
            verdict.lost.append(f"record {_record_key(key)}: missing")
            continue
        wrong = sorted(c for c, v in row.items() if have.get(c) != v)
        if wrong:
            verdict.lost.append(f"record {_record_key(key)}: stale columns {wrong}")
    verdict.figures["records"] = sum(r is not None for r in truth.rows.values())


def _compare_partition(truth: GroundTruth, actual: dict, verdict: Verdict) -> None:
    assignments, profiles = actual["assignments"], actual["profiles"]
    customers_of: dict[int, set[str]] = defaultdict(set)
    for key, person in truth.person_of.items():
        if truth.rows.get(key) is None:
            continue
        customer = assignments.get(_record_key(key))
        if customer is None:
            verdict.lost.append(f"record {_record_key(key)}: in no customer")
        else:
            customers_of[person].add(customer)
    owners: dict[str, set[int]] = defaultdict(set)
    for person, customers in customers_of.items():
        if len(customers) > 1:
            verdict.lost.append(f"person {person}: split over {len(customers)} customers")
        for customer in customers:
            owners[customer].add(person)
            if customer not in profiles:
                verdict.lost.append(f"person {person}: customer without a profile")
    verdict.doubled += [f"customer holds persons {sorted(p)}" for p in owners.values() if len(p) > 1]
    verdict.figures["persons"] = len(customers_of)


def _compare_feedback(truth: GroundTruth, actual: dict, verdict: Verdict) -> None:
    expected: dict[tuple[datetime, str], Counter] = defaultdict(Counter)
    for hour, model, rating in truth.turns.values():
        cell = expected[(hour, model)]
        cell["turns"] += 1
        if rating is not None:
            cell["rated_turns"] += 1
            cell["score_sum"] += rating
            cell["positive_ratings"] += rating >= 4
    for cell_key in sorted(set(expected) | set(actual["kpi_hourly"])):
        want, have = expected.get(cell_key, Counter()), actual["kpi_hourly"].get(cell_key, Counter())
        for measure in ("turns", "rated_turns", "score_sum", "positive_ratings"):
            w, h = want[measure], have[measure]
            if round(h, 6) > w:
                verdict.doubled.append(f"kpi_hourly {cell_key[0]:%H}h {cell_key[1]} {measure}: "
                                       f"{h} > {w} sent")
            elif round(h, 6) < w:
                verdict.lost.append(f"kpi_hourly {cell_key[0]:%H}h {cell_key[1]} {measure}: "
                                    f"{h} < {w} sent")
    lake = actual["lake_turns"]
    for turn in truth.turns:
        copies = lake.get(turn, 0)
        if copies == 0:
            verdict.lost.append(f"turn {turn}: not in the lake")
        elif copies > 1:
            verdict.doubled.append(f"turn {turn}: {copies} rows in the lake")
    verdict.figures["turns"] = len(truth.turns)
    verdict.figures["uncommitted_lake_rows"] = actual["uncommitted_lake_rows"]


def _compare_documents(truth: GroundTruth, actual: dict, verdict: Verdict) -> None:
    for key, sections in truth.documents.items():
        chunks = actual["chunks"].get(key, [])
        versions = {version for version in chunks}
        if len(chunks) > sections:
            verdict.doubled.append(f"document {key}: {len(chunks)} chunks for {sections} sections")
        elif len(chunks) < sections or versions != {truth.document_etags[key]}:
            verdict.lost.append(f"document {key}: {len(chunks)} chunks of versions "
                                f"{sorted(versions)}, {sections} of the last upload expected")
    verdict.figures["documents"] = len(truth.documents)


def read_customers(postgres) -> dict:
    """Stored records, record -> customer, and the customers with a profile."""
    schema = postgres.db_schema
    with postgres.transaction() as cur:
        cur.execute(f'SELECT system, table_name, pk, row_data FROM "{schema}".source_records')
        records = {f"{s}.{t}:{pk}": row for s, t, pk, row in cur.fetchall()}
        cur.execute(f'SELECT record_key, customer_id FROM "{schema}".customer_assignments')
        assignments = dict(cur.fetchall())
        cur.execute(f'SELECT customer_id FROM "{schema}".customer_profiles')
        profiles = {row[0] for row in cur.fetchall()}
    return {"records": records, "assignments": assignments, "profiles": profiles}


def read_actual(postgres, s3_client, lake_bucket: str, lancedb_uri: str,
                run_tag: str) -> dict:
    """The product's end state as a user reads it: stored records, record -> customer,
    profiles, hourly KPIs of this run's models, committed lake rows, chunk rows."""
    return {**read_customers(postgres), **read_feedback(postgres, s3_client, lake_bucket, run_tag),
            "chunks": read_chunks(lancedb_uri)}


def read_feedback(postgres, s3_client, lake_bucket: str, run_tag: str) -> dict:
    """Hourly KPIs of this run's models, and the turns of the committed and uncommitted lake
    objects."""
    import pyarrow.parquet as pq

    schema = postgres.db_schema
    with postgres.transaction() as cur:
        cur.execute(f'SELECT window_start, model_id, turns, rated_turns, mean_rating,'
                    f' positive_ratings FROM "{schema}".kpi_hourly WHERE model_id LIKE %s',
                    (f"chaos-{run_tag}-%",))
        kpis = {}
        for start, model, turns, rated, mean, positive in cur.fetchall():
            kpis[(start.astimezone(timezone.utc), model)] = Counter(
                turns=turns, rated_turns=rated, positive_ratings=positive,
                score_sum=round((mean or 0) * rated, 6))
        cur.execute(f'SELECT object_key FROM "{schema}".conversation_lake_objects')
        committed = {row[0] for row in cur.fetchall()}
    lake_turns: Counter = Counter()
    uncommitted = 0
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=lake_bucket, Prefix="conversations/"):
        for item in page.get("Contents", []):
            body = s3_client.get_object(Bucket=lake_bucket, Key=item["Key"])["Body"].read()
            frame = pq.read_table(io.BytesIO(body), columns=["conversation_id", "turn_id"])
            turns = [(c, int(t)) for c, t in zip(frame["conversation_id"].to_pylist(),
                                                  frame["turn_id"].to_pylist(), strict=True)]
            if item["Key"] in committed or any(item["Key"].endswith(k) for k in committed):
                lake_turns.update(turns)
            else:
                uncommitted += len(turns)
    return {"kpi_hourly": kpis, "lake_turns": lake_turns, "uncommitted_lake_rows": uncommitted}


def read_chunks(lancedb_uri: str) -> dict[str, list[str]]:
    """The document version of every chunk row, by document key."""
    import lancedb

    chunks: dict[str, list[str]] = defaultdict(list)
    db = lancedb.connect(lancedb_uri)
    if "knowledge_chunks" in db.table_names():
        table = db.open_table("knowledge_chunks").to_arrow()
        for key, version in zip(table["doc_key"].to_pylist(), table["doc_version"].to_pylist(),
                                strict=True):
            chunks[key].append(version)
    return chunks
