"""The freshness benchmark's moving parts: a paced mixed change stream, and a probe that asks the
retrieval call (or the KPI table) until each change is visible.

Every change carries a marker the probe can recognise, and markers only grow, so one read can
settle many changes at once:

* **profile** — a Debezium update of a probe loyalty member setting `points` to the change's
  sequence number; settled when `context(loyalty:<pk>, …)` returns points >= that number.
* **document** — a probe document rewritten with a new paragraph (new ETag); settled when the
  retrieval call over that document returns chunks of that version or a later one.
* **kpi** — a feedback turn on partition p, stamped now, with model id `bench-p<p>`; settled when
  `kpi_hourly` counts at least n turns for that model (the n-th sent to the partition).
* **the realistic CDC kinds** (`bench/cdc_mix.py`: new customers, e-mail changes, merges,
  splits, deletes, name and address changes, bookings, tickets, points) — settled when the
  profiles the customer look-up of `context()` returns for the change's references meet its
  `Expectation`, which the bench derived from how it built the data.

Latency = first time the probe saw it − time the producer handed the change to Kafka / S3.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from bench.cdc_mix import REALISTIC_KINDS, RealisticCdc

KINDS = ("profile", "document", "kpi")
ALL_KINDS = KINDS + REALISTIC_KINDS
# Sent but never probed: events no parser or apply step accepts (`_send_poison`).
POISON = "poison"
PROBE_QUESTION = "What are my loyalty points and the current policy?"


@dataclass
class Change:
    kind: str
    target: str  # member pk, document key, partition, or the record or twin a change concerns
    marker: Any  # points, ETag, the turn's number on its partition, or an `Expectation`
    sent: float  # time.monotonic() when handed to Kafka / S3
    seen: float | None = None

    @property
    def latency(self) -> float | None:
        return None if self.seen is None else self.seen - self.sent


@dataclass
class Ledger:
    """Every change sent, per kind and target, in send order (thread-safe)."""

    changes: dict[str, list[Change]] = field(default_factory=lambda: defaultdict(list))
    _open: dict[tuple[str, str], list[Change]] = field(default_factory=lambda: defaultdict(list))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, change: Change) -> None:
        with self._lock:
            self.changes[change.kind].append(change)
            self._open[(change.kind, change.target)].append(change)

    def open_targets(self, kind: str) -> list[str]:
        with self._lock:
            return [target for (k, target), pending in self._open.items() if k == kind and pending]

    def pending(self, kind: str, target: str) -> list[Change]:
        with self._lock:
            return list(self._open[(kind, target)])

    def settle(self, kind: str, target: str, reached, now: float) -> None:
        """Mark seen every open change of the target up to the last one `reached(change)`."""
        with self._lock:
            pending = self._open[(kind, target)]
            last = max((i for i, c in enumerate(pending) if reached(c)), default=-1)
            for change in pending[:last + 1]:
                change.seen = now
            del pending[:last + 1]

    def unsettled(self) -> int:
        with self._lock:
            return sum(len(p) for p in self._open.values())


class LoadGenerator(threading.Thread):
    """Sends `rate` changes per second in the given mix until stopped."""

    def __init__(self, publisher, s3_client, bucket: str, prefix: str, ledger: Ledger,
                 rate: float, mix: dict[str, float], members: list[dict], documents: dict,
                 partitions: int, seed: int = 1, population: RealisticCdc | None = None) -> None:
        super().__init__(daemon=True)
        self.population = population
        self.publisher, self.s3, self.bucket, self.prefix = publisher, s3_client, bucket, prefix
        self.ledger, self.rate, self.mix = ledger, rate, mix
        self.members, self.documents, self.partitions = members, documents, partitions
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.sent = defaultdict(int)
        self.behind_max_s = 0.0
        self._turns_per_partition = defaultdict(int)
        self._points = int(time.time())  # larger than any demo balance, and growing

    def run(self) -> None:
        kinds, weights = zip(*self.mix.items(), strict=True)
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            self.behind_max_s = max(self.behind_max_s, time.monotonic() - next_at)
            kind = self.rng.choices(kinds, weights)[0]
            if kind not in REALISTIC_KINDS:
                getattr(self, f"_send_{kind}")()
            elif not self._send_realistic(kind):  # everyone it could concern was just touched
                kind = f"{kind} (none eligible)"
            self.sent[kind] += 1
            next_at += 1.0 / self.rate
        self.publisher.flush()

    def _send_profile(self) -> None:
        from rag_assets.demo.source_systems import RowChange

        member = self.members[self.sent["profile"] % len(self.members)]
        self._points += 1
        after = {**member, "points": self._points}
        change = RowChange("loyalty", "members", "u", member["id"], dict(member), after, "bench")
        self.publisher.send_change(change, int(time.time() * 1000))
        self.ledger.add(Change("profile", str(member["id"]), self._points, time.monotonic()))

    def _send_realistic(self, kind: str) -> bool:
        """A change of a realistic kind; False when nobody can take one now."""
        change = self.population.next_change(kind, time.monotonic())
        if change is None:
            return False
        ts_ms = int(time.time() * 1000)
        for row in change.rows:
            self.publisher.send_change(row, ts_ms)
        self.ledger.add(Change(kind, change.target, change.expectation, time.monotonic()))
        return True

    def _send_poison(self) -> None:
        """A poison event, in turn on the CRM customers topic (beside the loyalty topic the
        profile probe watches) and on the feedback topic: the key that once stalled the CDC
        worker, or a generated malformed message (tests/fuzz_inputs.py)."""
        from tests.fuzz_inputs import RandomInput

        self._poison_input = getattr(self, "_poison_input", None) or RandomInput(self.rng.random())
        serial = self.sent[POISON]
        if serial % 2:
            _, value = self._poison_input.message("feedback")
            self.publisher.producer.send(self.publisher.config.feedback(), value=value)
            return
        topic = self.publisher.encoder.topic("crm", "customers")
        if serial % 4 == 0:
            key = b'{"id": ' + b"9" * 5000 + b"}"
            value = json.dumps({"op": "u", "after": {"id": 1}}).encode()
        else:
            key, (_, value) = b'{"id": 1}', self._poison_input.message("cdc")
        self.publisher.producer.send(topic, key=key, value=value)

    def _send_document(self) -> None:
        key = sorted(self.documents)[self.sent["document"] % len(self.documents)]
        serial = self.sent["document"]
        body = self.documents[key] + (f"\n\nFreshness note {serial}: desk hours changed to "
                                      f"{6 + serial % 12}:00 for revision {serial}.\n")
        sent = time.monotonic()
        etag = self.s3.put_object(Bucket=self.bucket, Key=self.prefix + key,
                                  Body=body.encode())["ETag"].strip('"')
        self.ledger.add(Change("document", self.prefix + key, etag, sent))

    def _send_kpi(self) -> None:
        partition = self.sent["kpi"] % self.partitions
        self._turns_per_partition[partition] += 1
        number = self._turns_per_partition[partition]
        event = {
            "conversation_id": f"bench-{partition}-{number}", "turn_id": 1, "customer_ref": None,
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "question": "Can I change my seat?", "answer": "Yes, up to 24 h before departure.",
            "model_id": f"bench-p{partition}", "latency_ms": 420.0, "retrieved_ids": ["seat#0"],
            "rating": self.rng.choice([None, "up", "down", 4, 5]), "comment": None,
        }
        self.publisher.producer.send(self.publisher.config.feedback(), key=event["conversation_id"].encode(),
                                     value=json.dumps(event).encode(), partition=partition)
        self.ledger.add(Change("kpi", f"bench-p{partition}", number, time.monotonic()))


class CachedQuestionEmbedder:
    """The probe asks one question over and over; embedding it once keeps the probe light."""

    def __init__(self, embedder) -> None:
        self._embedder = embedder
        self.model_id, self.dimension = embedder.model_id, embedder.dimension
        from rag_assets.knowledge.embedding import embed_questions

        self._embed_one = lru_cache(maxsize=8)(
            lambda text: embed_questions(embedder, [text]))

    def embed(self, texts):
        import numpy as np

        return np.vstack([self._embed_one(text) for text in texts])

    def count_tokens(self, text: str) -> int:
        return self._embedder.count_tokens(text)


class Probe(threading.Thread):
    """Reads what a user would read until every sent change is visible."""

    def __init__(self, service, postgres, ledger: Ledger, any_doc_key: str,
                 interval_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.service, self.postgres, self.ledger = service, postgres, ledger
        self.any_doc_key, self.interval_s = any_doc_key, interval_s
        self.stop_event = threading.Event()
        self.cycles = 0
        self.cycle_s_max = 0.0
        self.errors = 0
        self.cross_checked = self.cross_check_differences = 0

    def run(self) -> None:
        import psycopg

        with psycopg.connect(host=self.postgres.host, port=self.postgres.port,
                             user=self.postgres.user, password=self.postgres.password,
                             dbname=self.postgres.database, autocommit=True) as conn:
            while not self.stop_event.is_set():
                started = time.monotonic()
                try:
                    self._cycle(conn)
                except Exception:  # a read racing a writer's first commit; try again
                    self.errors += 1
                self.cycles += 1
                took = time.monotonic() - started
                self.cycle_s_max = max(self.cycle_s_max, took)
                self.stop_event.wait(max(0.0, self.interval_s - took))

    def _cycle(self, conn) -> None:
        self._settle_realistic(conn)
        for pk in self.ledger.open_targets("profile"):
            bundle = self.service.context(f"loyalty:{pk}", PROBE_QUESTION, k=1, mode="vector",
                                          doc_keys=[self.any_doc_key])
            profile = (bundle["customer"] or {}).get("profile") or {}
            points = ((profile.get("golden") or {}).get("loyalty") or {}).get("points") or 0
            self.ledger.settle("profile", pk, lambda c, p=points: c.marker <= p, time.monotonic())
        for key in self.ledger.open_targets("document"):
            bundle = self.service.context(f"loyalty:{self._any_member()}", PROBE_QUESTION, k=1,
                                          mode="vector", doc_keys=[key])
            versions = {c["provenance"]["doc_version"] for c in bundle["chunks"]}
            self.ledger.settle("document", key, lambda c, v=versions: c.marker in v, time.monotonic())
        if self.ledger.open_targets("kpi"):
            rows = conn.execute(
                f'SELECT model_id, sum(turns) FROM "{self.postgres.db_schema}".kpi_hourly'
                " WHERE model_id LIKE 'bench-p%%' GROUP BY model_id").fetchall()
            now = time.monotonic()
            for model_id, turns in rows:
                self.ledger.settle("kpi", model_id, lambda c, n=int(turns): c.marker <= n, now)

    def _settle_realistic(self, conn) -> None:
        """Every open change's references, looked up in one query per cycle (`batch_profiles`);
        every 10th cycle a few of them are looked up again through `find_profile`, the customer
        look-up of `context()`, in the same snapshot, and any difference is counted."""
        open_changes = [(kind, target, self.ledger.pending(kind, target))
                        for kind in REALISTIC_KINDS for target in self.ledger.open_targets(kind)]
        refs = sorted({ref for _, _, pending in open_changes
                       for change in pending for ref in change.marker.references()})
        if not refs:
            return
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute(f'SET LOCAL search_path TO "{self.postgres.db_schema}", public')
            found = batch_profiles(cur, refs)
            if self.cycles % 10 == 0:
                self._cross_check(cur, found, refs[:: max(1, len(refs) // 5)])
        now = time.monotonic()
        for kind, target, _ in open_changes:
            self.ledger.settle(kind, target, lambda c: c.marker.met(found), now)

    def _cross_check(self, cur, found: dict, refs: list[str]) -> None:
        from rag_assets.customers.lookup import find_profile

        for ref in refs:
            single = find_profile(cur, ref)
            batched = found.get(ref)
            self.cross_checked += 1
            if (single or {}).get("customer_id") != (batched or {}).get("customer_id"):
                self.cross_check_differences += 1

    def _any_member(self) -> str:
        targets = self.ledger.open_targets("profile")
        return targets[0] if targets else "0"


def batch_profiles(cur, refs: list[str]) -> dict[str, dict | None]:
    """The stored profile each reference finds (None: no customer, or more than one), as
    `find_profile` resolves the references the realistic mix uses — a record (`system.table:pk`),
    an e-mail or a loyalty number — for many references in one query."""
    from rag_assets.customers.identifiers import (
        EMAIL,
        LOYALTY_NUMBER,
        normalize_document_number,
        normalize_email,
    )
    from rag_assets.customers.lookup import record_key_of_reference

    def kind_and_value(ref: str) -> tuple[str, str]:
        if key := record_key_of_reference(ref):
            return "record", key
        if "@" in ref:
            return EMAIL, normalize_email(ref)
        return LOYALTY_NUMBER, normalize_document_number(ref)

    kinds, values = zip(*map(kind_and_value, refs), strict=True)
    cur.execute("""
        WITH refs(ref, kind, value) AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])),
        keys AS (
            SELECT r.ref, l.record_key FROM refs r
            JOIN identity_lookup l ON l.kind = r.kind AND l.value = r.value
            UNION ALL SELECT ref, value FROM refs WHERE kind = 'record'),
        found AS (
            SELECT k.ref, min(a.customer_id) AS customer_id FROM keys k
            JOIN customer_assignments a ON a.record_key = k.record_key
            GROUP BY k.ref HAVING count(DISTINCT a.customer_id) = 1)
        SELECT f.ref, p.profile FROM found f JOIN customer_profiles p USING (customer_id)""",
                (refs, list(kinds), list(values)))
    profiles: dict[str, dict | None] = dict.fromkeys(refs)
    profiles.update(dict(cur.fetchall()))
    return profiles


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[rank]


def summarise(ledger: Ledger, started: float, censor_at: float) -> dict[str, dict]:
    """Per kind: count, percentiles (a change never seen counts as seen at `censor_at`, so its
    percentile is a lower bound), unseen count, and p95 per minute of sending (the lag trend)."""
    summary = {}
    for kind in [k for k in ALL_KINDS if k in KINDS or ledger.changes.get(k)]:
        changes = ledger.changes.get(kind, [])
        latencies = [c.latency if c.seen is not None else censor_at - c.sent for c in changes]
        by_minute: dict[int, list[float]] = defaultdict(list)
        for change, latency in zip(changes, latencies, strict=True):
            by_minute[int((change.sent - started) // 60)].append(latency)
        summary[kind] = {
            "changes": len(changes), "unseen": sum(c.seen is None for c in changes),
            **{f"p{int(q * 100)}": percentile(latencies, q) for q in (0.5, 0.95, 0.99)},
            "max": max(latencies, default=float("nan")),
            "p95_by_minute": [round(percentile(by_minute[m], 0.95), 2) for m in sorted(by_minute)],
        }
    return summary
