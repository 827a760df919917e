"""Erasure is atomic with respect to the streaming writers, against real Kafka, S3 and PostgreSQL.

People, each a CRM customer and a loyalty member linked by e-mail, are erased one after the
other (the PostgreSQL step of each erasure, where writers race it; the lake step once at the end)
while the `cdc_stream` and `feedback_events_stream` workers (their micro-batches, each in
a thread of its own) apply a steady load of changes and turns for those same people — sent
before, while and after each erasure runs. Nothing of an erased person may be served again: no
profile under any of their references at any moment after their erasure, and at the end no
source record, graph row, feedback turn or lake row. People who are not erased keep receiving
changes, and their profiles end with the last value sent (the load generator's ground truth),
which shows the workers were applying all along.

Before the erasure lock (`platform/erasure_lock.py`) a writer's check of the suppression lists
and its write could straddle an erasure's commit and bring the person back.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import closing
from datetime import UTC, datetime

import pytest

from rag_assets.customers.lookup import find_profile
from rag_assets.customers.streaming import CdcMicroBatches
from rag_assets.feedback.lake_store import read_lake_events, s3_client
from rag_assets.feedback.streaming import FeedbackMicroBatches
from rag_assets.platform.micro_batch import MicroBatchSession
from rag_assets.privacy.erasure import erase_in_postgres
from rag_assets.privacy.lake_rewrite import rewrite_lake
from rag_assets.privacy.request_log import COMPLETED, LAKE_PENDING, ensure_erasure_schema
from resources.sentiment import SentimentResource
from tests.integration.customers.helpers import debezium, publish

pytestmark = [pytest.mark.integration]

ERASED = 100
CONTROLS = 10
FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Niklaus", "Radia",
         "Tony", "Margaret")
LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Wirth",
        "Perlman", "Hoare")
TS = 1_767_000_000_000


def email(p: int) -> str:
    return f"person{p}@erasure-race.example"


def references(p: int) -> list[str]:
    return [f"crm:{p}", f"loyalty:{p}", email(p), f"LY{p:06d}"]


def crm_change(p: int, version: int):
    after = {"id": p, "first_name": FIRST[p % len(FIRST)], "last_name": LAST[p // len(FIRST)],
             "email": email(p), "phone": None, "country": "GB",
             "address_line1": f"{version} Race Street"}
    return debezium("crm", "customers", "c" if version == 0 else "u", pk=p, after=after,
                    ts_ms=TS + version)


def loyalty_change(p: int, version: int):
    after = {"id": p, "member_number": f"LY{p:06d}", "email": email(p),
             "full_name": f"{FIRST[p % len(FIRST)]} {LAST[p // len(FIRST)]}", "tier": "gold",
             "points": version}
    return debezium("loyalty", "members", "c" if version == 0 else "u", pk=p, after=after,
                    ts_ms=TS + version)


def feedback_turn(p: int, number: int) -> bytes:
    now = datetime.now(UTC)
    return json.dumps({
        "conversation_id": f"race-{p}", "turn_id": number,
        "customer_ref": references(p)[number % 3],
        "ts": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "question": f"question {number} of person {p}", "answer": "an answer",
        "model_id": "model-a", "latency_ms": 500, "retrieved_ids": [], "rating": 5,
        "comment": None}).encode()


class Load:
    """Sends changes and turns for the people around the one being erased, and remembers what
    it sent: the last CRM version per person and when each person's events were sent."""

    def __init__(self, kafka) -> None:
        self.kafka = kafka
        self.current = 0  # the person being erased
        self.last_version: dict[int, int] = {}
        self.sent_at: dict[int, list[float]] = {}
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.version = 0

    def people_now(self) -> list[int]:
        around = range(max(0, self.current - 2), min(ERASED, self.current + 3))
        return [*around, *range(ERASED, ERASED + CONTROLS)]

    def run(self) -> None:
        producer = self.kafka.producer()
        try:
            while not self.stop.is_set():
                self.version += 1
                for p in self.people_now():
                    for message in (crm_change(p, self.version), loyalty_change(p, self.version)):
                        producer.send(self.kafka.topic(message.topic), key=message.key,
                                      value=message.value)
                    producer.send(self.kafka.topic("app.feedback"), key=f"race-{p}".encode(),
                                  value=feedback_turn(p, self.version))
                    self.last_version[p] = self.version
                    self.sent_at.setdefault(p, []).append(time.monotonic())
                producer.flush()
                time.sleep(0.2)
        except BaseException as error:  # surfaced by the test
            self.errors.append(error)
        finally:
            producer.close()


class Workers:
    """The two streaming workers' micro-batches, each stepping in its own thread."""

    def __init__(self, kafka, postgres, s3) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.last_busy = time.monotonic()
        self.threads = [
            threading.Thread(target=self._run, args=(
                postgres, "cdc_race", lambda session: CdcMicroBatches(
                    session, kafka, postgres, max_records=60)), daemon=True),
            threading.Thread(target=self._run, args=(
                postgres, "feedback_race", lambda session: FeedbackMicroBatches(
                    session, kafka, s3, postgres, SentimentResource(), batch_interval_s=0.0,
                    max_records=60)), daemon=True)]

    def _run(self, postgres, name: str, open_batches) -> None:
        try:
            with postgres.connection() as conn:
                with closing(open_batches(MicroBatchSession(conn, name, f"{name}-run"))) as batches:
                    while not self.stop.is_set():
                        if batches.step():
                            self.last_busy = time.monotonic()
        except BaseException as error:  # surfaced by the test
            self.errors.append(error)

    def __enter__(self) -> Workers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def wait_idle(self, quiet_s: float = 3.0, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() - self.last_busy < quiet_s:
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, "the workers never caught up"
            time.sleep(0.2)


def wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the load generator fell behind"
        time.sleep(0.01)


def served(postgres, people) -> dict[int, list[str]]:
    """The references of `people` under which a profile is still served."""
    with postgres.transaction() as cur:
        found = {p: [r for r in references(p) if find_profile(cur, r) is not None]
                 for p in people}
    return {p: refs for p, refs in found.items() if refs}


def wait_until_served(postgres, people, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(served(postgres, people)) < len(people):
        assert time.monotonic() < deadline, "the people were never all served"
        time.sleep(0.5)


def traces(postgres, people) -> dict[str, int]:
    """Rows of `people` left anywhere in PostgreSQL (all zero when erased)."""
    pks = [str(p) for p in people]
    keys = [f"{system}:{p}" for p in people for system in ("crm.customers", "loyalty.members")]
    refs = [r for p in people for r in references(p)]
    with postgres.transaction() as cur:
        cur.execute("SELECT count(*) FROM source_records WHERE system IN ('crm', 'loyalty')"
                    " AND pk = ANY(%s)", (pks,))
        found = {"source_records": cur.fetchone()[0]}
        for table in ("identity_nodes", "identity_lookup", "customer_assignments"):
            cur.execute(f"SELECT count(*) FROM {table} WHERE record_key = ANY(%s)", (keys,))
            found[table] = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM feedback_turns WHERE customer_ref = ANY(%s)", (refs,))
        found["feedback_turns"] = cur.fetchone()[0]
    return found


def test_erasures_under_a_steady_load_for_the_same_people_leave_nothing(kafka, postgres, s3):
    everyone = range(ERASED + CONTROLS)
    with postgres.transaction() as cur:
        ensure_erasure_schema(cur, postgres.db_schema)  # before the first look-up
    publish(kafka, [m for p in everyone for m in (crm_change(p, 0), loyalty_change(p, 0))],
            partitions=2)
    kafka.create_topics([kafka.topic("app.feedback")], partitions=2)
    load = Load(kafka)
    loader = threading.Thread(target=load.run, daemon=True)
    erased_at: dict[int, float] = {}
    with Workers(kafka, postgres, s3) as workers:
        wait_until_served(postgres, everyone)
        loader.start()
        try:
            for p in range(ERASED):
                load.current = p
                wait_for(lambda: p in load.sent_at)
                time.sleep(0.1)  # the load for p is in flight: sent, polled, being applied
                with postgres.transaction() as cur:
                    result = erase_in_postgres(cur, postgres.db_schema, f"crm:{p}", source="test")
                erased_at[p] = time.monotonic()
                assert result.status == LAKE_PENDING and result.customer_found, (p, result.summary())
                wait_for(lambda: load.sent_at[p][-1] > erased_at[p])  # p's load goes on
                assert served(postgres, range(max(0, p - 3), p + 1)) == {}, f"after erasing {p}"
                assert not workers.errors and not load.errors, (workers.errors, load.errors)
        finally:
            load.stop.set()
            loader.join(timeout=30)
        assert not load.errors, load.errors
        workers.wait_idle()
        assert not workers.errors, workers.errors
        # The lake's step, once for all requests as the `customer_erasures` asset does it (it
        # reads every lake object). Turns of the erased people stored after their erasure would
        # be in feedback_turns below: a turn's row and its lake row are written together.
        assert rewrite_lake(postgres, s3).requests_completed == ERASED

    # The premise: every erased person's events were sent before and after their erasure.
    assert all(min(load.sent_at[p]) < erased_at[p] < max(load.sent_at[p]) for p in range(ERASED))

    assert served(postgres, range(ERASED)) == {}
    assert traces(postgres, range(ERASED)) == {
        "source_records": 0, "identity_nodes": 0, "identity_lookup": 0,
        "customer_assignments": 0, "feedback_turns": 0}
    erased_refs = {r for p in range(ERASED) for r in references(p)}
    lake = read_lake_events(s3, s3_client(s3))
    assert [e.customer_ref for e in lake if e.customer_ref in erased_refs] == []
    with postgres.transaction() as cur:
        cur.execute("SELECT status, count(*) FROM erasure_requests GROUP BY status")
        assert dict(cur.fetchall()) == {COMPLETED: ERASED}

    # The people not erased were kept current all along: their profiles hold the last change.
    with postgres.transaction() as cur:
        for p in range(ERASED, ERASED + CONTROLS):
            profile = find_profile(cur, f"crm:{p}")
            assert profile is not None and f"{load.last_version[p]} Race Street" in json.dumps(
                profile), p
    assert {e.customer_ref for e in lake} >= {references(p)[load.last_version[p] % 3]
                                              for p in range(ERASED, ERASED + CONTROLS)}
