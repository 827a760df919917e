"""No single event stalls a source, against the real Kafka, S3 and PostgreSQL.

Two kinds of poison are used, both real:

* input that stalled Customer 360 before the item guard (an integer key beyond Python's
  conversion limit: `json.loads` raised outside the parser's rejections, the worker failed and
  retried the same poll forever);
* failures the product cannot foresee, made real by the database itself: the test adds a CHECK
  constraint to its private schema that refuses one row, so PostgreSQL raises for that one item
  in the middle of the product's own statements — at the CDC apply, the identity linking, the
  profile build, the feedback apply, or a whole partition's ledger claim.

Each test checks what a user would: the good events are applied (profiles, turns, lake rows), the
poison is a dead letter naming the stage and the error, nothing is left in a queue, and the
stream is caught up.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import timedelta

import pytest

from rag_assets.customers.cli_commands import add_parsers, customers_cli
from rag_assets.customers.streaming import CdcMicroBatches
from rag_assets.customers.source_state import RecordKey
from rag_assets.feedback.ingest import IngestStats, apply_range
from rag_assets.feedback.lake_store import s3_client
from rag_assets.feedback.windows import LatenessPolicy
from rag_assets.customers.dead_letter_replay import replay_dead_letters
from rag_assets.platform.kafka_ingest import OffsetRangeConfig
from rag_assets.platform.kafka_stream import HOLD_BACK_MAX_S
from rag_assets.platform.micro_batch import MicroBatchSession
from tests.fuzz_inputs import feedback_value
from tests.integration.customers.helpers import Message, debezium, publish

pytestmark = [pytest.mark.integration]

TS = 1_767_000_000_000


def person(pk: int, email: str) -> dict:
    return {"id": pk, "first_name": "Ada", "last_name": "Byron", "email": email,
            "phone": None, "country": "GB"}


def crm(pk: int, email: str, ts: int = TS, partition: int = 0, **extra) -> Message:
    return debezium("crm", "customers", "c", pk=pk, after={**person(pk, email), **extra},
                    ts_ms=ts, partition=partition)


def loyalty(pk: int, email: str, partition: int = 0) -> Message:
    return debezium("loyalty", "members", "c", pk=pk, ts_ms=TS, partition=partition,
                    after={"id": pk, "member_number": f"LY{pk:06d}", "email": email,
                           "full_name": "Ada Byron", "tier": "gold", "points": 10})


@contextmanager
def cdc_stream(kafka, postgres, max_records: int = 2000) -> Iterator[CdcMicroBatches]:
    """The cdc_stream worker's micro-batches (its schema is created when they open)."""
    with postgres.connection() as conn:
        session = MicroBatchSession(conn, "poison_test", "poison-session")
        with closing(CdcMicroBatches(session, kafka, postgres, max_records=max_records)) as batches:
            yield batches


def catch_up(batches: CdcMicroBatches, events: int, timeout_s: float = 60) -> None:
    """Step the worker until it has applied `events` events and then finds nothing new."""
    applied, deadline = 0, time.monotonic() + timeout_s
    while True:
        taken = batches.step()
        applied += taken
        if applied >= events and not taken:
            return
        assert time.monotonic() < deadline, f"only {applied} of {events} events were applied"


def stream_everything(kafka, postgres, events: int) -> None:
    with cdc_stream(kafka, postgres) as batches:
        catch_up(batches, events)
        assert batches.lag().metadata["lag_events"] == 0


def create_schema(kafka, postgres) -> None:
    with cdc_stream(kafka, postgres):
        pass


def dead_letters(postgres) -> list[tuple]:
    with postgres.transaction() as cur:
        cur.execute("SELECT source, reason, topic, \"offset\", object_key FROM dead_letters"
                    " WHERE replayed_at IS NULL ORDER BY id")
        return cur.fetchall()


def scalar(postgres, sql: str, params=()):
    with postgres.transaction() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


def refuse(postgres, table: str, constraint: str, check: str) -> None:
    """A CHECK constraint on the test's own schema: PostgreSQL refuses the rows it names."""
    with postgres.transaction() as cur:
        cur.execute(f"ALTER TABLE {table} ADD CONSTRAINT {constraint} CHECK ({check}) NOT VALID")


def allow(postgres, table: str, constraint: str) -> None:
    with postgres.transaction() as cur:
        cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}")


def test_the_key_that_stalled_customer_360_is_a_dead_letter_and_both_topics_go_on(kafka, postgres):
    poison = Message("cdc.crm.customers", b'{"id": ' + b"9" * 5000 + b"}",
                     json.dumps({"op": "c", "after": person(3, "c@example.com")}).encode(), 0)
    messages = [crm(1, "a@example.com"), poison, crm(2, "b@example.com"),
                loyalty(10, "a@example.com")]
    publish(kafka, messages, partitions=1)

    stream_everything(kafka, postgres, len(messages))

    assert scalar(postgres, "SELECT count(*) FROM source_records") == 3
    assert scalar(postgres, "SELECT count(*) FROM customer_profiles") == 2  # a@ joins crm 1 + loyalty
    assert dead_letters(postgres) == [(
        "cdc", "key is JSON that cannot be decoded: Exceeds the limit (4300 digits) for integer "
        "string conversion: value has 5000 digits; use sys.set_int_max_str_digits() to increase "
        "the limit", "cdc.crm.customers", 1, None)]


def test_an_event_the_database_refuses_is_set_aside_and_the_rest_of_its_poll_applied(kafka, postgres):
    messages = [crm(pk, f"p{pk}@example.com") for pk in range(1, 41)]
    publish(kafka, messages, partitions=1)
    create_schema(kafka, postgres)
    refuse(postgres, "source_records", "no_pk_17", "pk <> '17'")

    stream_everything(kafka, postgres, len(messages))

    assert scalar(postgres, "SELECT count(*) FROM source_records") == 39
    assert scalar(postgres, "SELECT count(*) FROM customer_profiles") == 39
    [(source, reason, topic, offset, _)] = dead_letters(postgres)
    assert (source, topic, offset) == ("cdc", "cdc.crm.customers", 16)
    assert reason.startswith("cdc apply failed: CheckViolation (SQLSTATE 23514) at ")
    assert "p17@example.com" not in reason

    # Once the database takes it, replaying the letter applies it, exactly once.
    allow(postgres, "source_records", "no_pk_17")
    with postgres.transaction() as cur:
        report = replay_dead_letters(cur, "cdc", kafka)
    assert (report.applied, report.still_failing) == (1, 0)
    assert scalar(postgres, "SELECT count(*) FROM source_records") == 40


def test_a_record_the_linker_fails_on_is_set_aside_and_every_other_record_linked(kafka, postgres):
    messages = [crm(pk, f"q{pk}@example.com") for pk in range(1, 31)]
    messages.append(loyalty(500, "q5@example.com"))  # joins crm 5
    publish(kafka, messages, partitions=1)
    create_schema(kafka, postgres)
    poisoned = str(RecordKey("crm", "customers", "12"))
    refuse(postgres, "identity_nodes", "no_node_12", f"record_key <> '{poisoned}'")

    stream_everything(kafka, postgres, len(messages))

    assert scalar(postgres, "SELECT count(*) FROM source_records") == 31
    assert scalar(postgres, "SELECT count(*) FROM identity_nodes") == 30
    assert scalar(postgres, "SELECT count(*) FROM identity_pending") == 0
    assert scalar(postgres, "SELECT count(*) FROM customer_profiles") == 29  # 30 people, 12 aside
    [(source, reason, topic, _, object_key)] = dead_letters(postgres)
    assert (source, topic, object_key) == ("identity_graph", None, poisoned)
    assert reason.startswith("identity linking failed: CheckViolation (SQLSTATE 23514) at ")

    # Once the database takes it, `rag-assets dead-letters replay --source identity_graph`
    # queues the record again and links it.
    allow(postgres, "identity_nodes", "no_node_12")
    parser = argparse.ArgumentParser(prog="rag-assets")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    out = io.StringIO()
    args = parser.parse_args(["dead-letters", "replay", "--source", "identity_graph"])
    assert customers_cli(args, postgres=postgres, kafka=kafka, out=out) == 0
    assert out.getvalue().startswith("1 pending, 1 replayed (queued again 1), 0 still failing; "
                                     "1 record(s) relinked")
    assert scalar(postgres, "SELECT count(*) FROM identity_nodes") == 31
    assert scalar(postgres, "SELECT count(*) FROM customer_profiles") == 30
    assert dead_letters(postgres) == []


def test_a_customer_whose_profile_the_database_refuses_is_set_aside(kafka, postgres):
    messages = [crm(pk, f"r{pk}@example.com") for pk in range(1, 21)]
    messages[6] = crm(7, "r7@example.com", first_name="Zelda")
    publish(kafka, messages, partitions=1)
    create_schema(kafka, postgres)
    refuse(postgres, "customer_profiles", "no_zelda", "profile::text NOT LIKE '%Zelda%'")

    stream_everything(kafka, postgres, len(messages))

    assert scalar(postgres, "SELECT count(*) FROM customer_profiles") == 19
    assert scalar(postgres, "SELECT count(*) FROM profile_pending") == 0
    [(source, reason, _, _, customer_id)] = dead_letters(postgres)
    assert source == "customer_profiles" and customer_id.startswith("cus_")
    assert reason.startswith("profile build failed: CheckViolation (SQLSTATE 23514) at ")
    assert scalar(postgres, "SELECT count(*) FROM customer_assignments WHERE customer_id = %s",
                  (customer_id,)) == 1


def test_a_partition_whose_range_fails_whole_is_held_back_while_the_others_go_on(kafka, postgres):
    messages = [crm(pk, f"s{pk}@example.com", partition=pk % 2) for pk in range(1, 21)]
    messages.append(loyalty(900, "s2@example.com"))
    publish(kafka, messages, partitions=2)
    create_schema(kafka, postgres)
    held_topic = kafka.topic("cdc.crm.customers")
    # The ledger refuses partition 1 of crm.customers: its claim, before any item, fails.
    refuse(postgres, "applied_offsets", "hold_crm_1",
           f"NOT (topic = '{held_topic}' AND partition = 1)")

    with cdc_stream(kafka, postgres) as batches:
        catch_up(batches, 11)
        lag = batches.lag()
        assert lag.metadata["lag_events"] == 10
        [held] = lag.metadata["partitions_held_back"]
        assert held.startswith(f"{held_topic}[1]@0: range failed: CheckViolation (SQLSTATE 23514)")
        assert scalar(postgres, "SELECT count(*) FROM source_records") == 11  # partition 0 + loyalty

        allow(postgres, "applied_offsets", "hold_crm_1")
        catch_up(batches, 10, timeout_s=HOLD_BACK_MAX_S + 10)
        assert batches.lag().metadata["lag_events"] == 0
        assert "partitions_held_back" not in batches.lag().metadata

    assert scalar(postgres, "SELECT count(*) FROM source_records") == 21
    assert scalar(postgres, "SELECT count(*) FROM customer_profiles") == 20
    assert dead_letters(postgres) == []


def test_a_turn_the_database_refuses_is_a_dead_letter_and_the_others_reach_the_lake(kafka, postgres, s3):
    from rag_assets.feedback.assets import ensure_feedback_schema

    turns = [{**feedback_value(turn), "conversation_id": f"conv-{turn}"} for turn in range(12)]
    publish(kafka, [Message("app.feedback", None, json.dumps(t).encode(), 0) for t in turns],
            partitions=1)
    with postgres.transaction() as cur:
        ensure_feedback_schema(cur, postgres)
    refuse(postgres, "feedback_turns", "no_conv_5", "conversation_id <> 'conv-5'")
    stats = IngestStats()
    rng = OffsetRangeConfig(topic=kafka.topic("app.feedback"), partition=0, start=0, end=12)
    with postgres.transaction() as cur:
        apply_range(cur, kafka, s3, s3_client(s3), rng, LatenessPolicy(timedelta(hours=48)), stats)

    assert stats.turns_inserted == 11
    assert stats.lake_rows_written == 11
    assert scalar(postgres, "SELECT count(*) FROM feedback_turns") == 11
    [(source, reason, topic, offset, _)] = dead_letters(postgres)
    assert (source, topic, offset) == ("feedback", "app.feedback", 5)
    assert reason.startswith("unprocessable: feedback apply failed: CheckViolation (SQLSTATE 23514)")
