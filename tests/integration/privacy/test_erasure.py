"""Right to be forgotten against real Kafka, S3 and PostgreSQL.

A customer built by the real customers assets (CRM + loyalty records linked by email) and
feedback turns landed by the real feedback assets are erased — once through the CLI function,
once through an event on `privacy.erasure` (sensor tick → `customer_erasures` run) — and no
store returns a trace of them afterwards: no source record, node, lookup row, assignment or
profile; no lookup by any of their identifiers; no retrieval bundle; no lake row; no fine-tuning
example; and a redelivered or rebuilt CDC stream does not bring them back.
"""

import argparse
import io
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterInstance, materialize

from rag_assets.privacy.assets import customer_erasures
from rag_assets.privacy.cli_commands import erase_cli
from rag_assets.customers.lookup import find_profile
from rag_assets.demo.debezium import DebeziumEncoder
from rag_assets.feedback.assets import (
    conversation_log,
    feedback_scored,
    finetune_dataset,
)
from rag_assets.feedback.lake_store import read_lake_events
from rag_assets.retrieval.context import RetrievalService
from resources.sentiment import SentimentResource
from sensors.kafka_ranges import plan_tick
from sensors.privacy import ERASURE_RANGES
from tests.integration.customers.helpers import (
    catch_up,
    materialize_customers,
    metadata,
    publish,
)

pytestmark = pytest.mark.integration

ALICE = {"id": 1, "first_name": "Alice", "last_name": "Moreau", "email": "Alice.Moreau@Example.org",
         "phone": "07700 900101", "date_of_birth": "1985-02-11", "address_line1": "1 Quay St",
         "city": "Leeds", "postcode": "LS1 4AB", "country": "GB", "national_id": "QQ123456A"}
ALICE_LOYALTY = {"id": 70001, "member_number": "LY-70001", "email": "alice.moreau@example.org",
                 "phone": "+44 7700 900101", "full_name": "Alice Moreau",
                 "date_of_birth": "1985-02-11", "tier": "gold", "points": 1200}
BOB = {"id": 2, "first_name": "Bob", "last_name": "Stone", "email": "bob.stone@example.org",
       "phone": "07700 900202", "date_of_birth": "1971-06-30", "address_line1": "9 Mill Rd",
       "city": "York", "postcode": "YO1 7HH", "country": "GB", "national_id": "QQ654321B"}
ALICE_IDENTIFIERS = ["Alice.Moreau@Example.org", "alice.moreau@example.org", "07700 900101",
                     "+447700900101", "LY-70001", "LY70001", "crm:1", "loyalty:70001"]
BOB_IDENTIFIERS = ["bob.stone@example.org", "+447700900202", "crm:2"]
T0 = datetime(2025, 2, 3, 9, tzinfo=UTC)


def cdc_messages(kafka):
    encoder = DebeziumEncoder(topic_prefix=kafka.topic_prefix)
    return [*encoder.snapshot("crm", "customers", [ALICE, BOB], 1_000),
            *encoder.snapshot("loyalty", "members", [ALICE_LOYALTY], 1_000)]


def turn(n: int, ref: str | None, question: str) -> dict:
    return {"conversation_id": f"conv-{n}", "turn_id": 1, "customer_ref": ref,
            "ts": (T0 + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "question": question, "answer": f"Answer number {n} about the question.",
            "model_id": "model-a", "latency_ms": 800, "retrieved_ids": ["faq#1"], "rating": 5,
            "comment": None}


# Alice under three spellings of her references, Bob under two, one anonymous turn.
FEEDBACK = [
    turn(1, "ALICE.MOREAU@example.org", "alpha zebra lounge question one"),
    turn(2, "crm:1", "alpha zebra baggage question two"),
    turn(3, "LY70001", "alpha zebra upgrade question three"),
    turn(4, "crm:2", "bravo yak refund question four"),
    turn(5, "bob.stone@example.org", "bravo yak seat question five"),
    turn(6, None, "charlie anonymous question six"),
]


def publish_json(kafka, logical_topic, values, key=lambda v: None):
    topic = kafka.topic(logical_topic)
    kafka.create_topics([topic], partitions=1)
    producer = kafka.producer()
    for value in values:
        producer.send(topic, key=key(value), value=json.dumps(value).encode())
    producer.flush()
    producer.close()


def trace(postgres, identifiers: list[str], record_keys: list[str]) -> dict:
    """Every place a customer could still show up, as counts (all zero when erased)."""
    systems = [k.split(".")[0] for k in record_keys]
    pks = [k.split(":")[1] for k in record_keys]
    with postgres.transaction() as cur:
        cur.execute("SELECT count(*) FROM source_records WHERE (system, pk) IN"
                    " (SELECT * FROM unnest(%s::text[], %s::text[]))", (systems, pks))
        found = {"source_records": cur.fetchone()[0]}
        for table in ("identity_nodes", "identity_lookup", "customer_assignments"):
            cur.execute(f"SELECT count(*) FROM {table} WHERE record_key = ANY(%s)",
                        (record_keys,))
            found[table] = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM identity_edges WHERE a_key = ANY(%s) OR b_key = ANY(%s)",
                    (record_keys, record_keys))
        found["identity_edges"] = cur.fetchone()[0]
        found["profiles"] = sum(find_profile(cur, ref) is not None for ref in identifiers)
        cur.execute("SELECT count(*) FROM customer_profiles WHERE profile::text ILIKE ANY(%s)",
                    ([f"%{i}%" for i in identifiers if "@" in i],))
        found["profile_text"] = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM feedback_turns WHERE customer_ref ILIKE ANY(%s)",
                    (identifiers,))
        found["feedback_turns"] = cur.fetchone()[0]
    return found


def lake_questions(s3) -> dict[str, str | None]:
    return {e.question: e.customer_ref for e in read_lake_events(s3, s3.get_client())}


def export_finetune(s3, postgres, kafka) -> tuple[str, str]:
    """A new fine-tuning export: (its version, its JSONL text)."""
    result = materialize([finetune_dataset], resources={"s3": s3, "postgres": postgres,
                                                        "kafka": kafka})
    assert result.success
    version = result.asset_materializations_for_node("finetune_dataset")[0].metadata["version"].value
    body = s3.get_client().get_object(Bucket=s3.lake_bucket,
                                      Key=f"finetune/{version}/train.jsonl")["Body"].read()
    return version, body.decode()


def assert_withdrawn(s3, postgres, version: str, request_id: str) -> None:
    """The export is recorded as withdrawn by the request and its objects are gone."""
    with postgres.transaction() as cur:
        cur.execute("SELECT withdrawn_by, objects_removed_at IS NOT NULL FROM finetune_exports"
                    " WHERE version = %s", (version,))
        assert cur.fetchone() == ([request_id], True)
    client = s3.get_client()
    for name in ("train.jsonl", "manifest.json"):
        with pytest.raises(client.exceptions.NoSuchKey):
            client.get_object(Bucket=s3.lake_bucket, Key=f"finetune/{version}/{name}")


def test_an_erased_customer_leaves_no_trace(kafka, postgres, s3, lancedb):
    # --- a customer world through the real assets
    publish(kafka, cdc_messages(kafka))
    catch_up(kafka, postgres)
    publish_json(kafka, "app.feedback", FEEDBACK, key=lambda v: v["conversation_id"].encode())
    resources = {"kafka": kafka, "s3": s3, "postgres": postgres, "sentiment": SentimentResource()}
    assert materialize([conversation_log, feedback_scored], resources=resources).success
    alice_keys, bob_keys = ["crm.customers:1", "loyalty.members:70001"], ["crm.customers:2"]
    before = trace(postgres, ALICE_IDENTIFIERS, alice_keys)
    assert before["source_records"] == 2 and before["customer_assignments"] == 2
    assert before["profiles"] == len(ALICE_IDENTIFIERS) and before["feedback_turns"] == 3
    with_alice, text = export_finetune(s3, postgres, kafka)
    assert "alpha zebra lounge question one" in text

    # --- erase Alice through the CLI: a dry run first changes nothing
    out = io.StringIO()
    dry = argparse.Namespace(customer="+44 7700 900101", yes=False, request_id=None, json=True,
                             pg_schema=None)
    assert erase_cli(dry, postgres=postgres, s3=s3, out=out) == 0
    assert json.loads(out.getvalue())["records"] == 2
    assert trace(postgres, ALICE_IDENTIFIERS, alice_keys) == before
    out = io.StringIO()
    args = argparse.Namespace(**{**vars(dry), "yes": True, "request_id": "req-alice"})
    assert erase_cli(args, postgres=postgres, s3=s3, out=out) == 0
    summary = json.loads(out.getvalue())
    assert summary["status"] == "completed" and summary["records_erased"] == 2
    assert summary["feedback_turns_deleted"] == 3 and summary["lake_rows_removed"] == 3
    # The export written before holds her turns: withdrawn, its objects deleted.
    assert summary["finetune_exports_withdrawn"] == 1 and summary["finetune_exports_removed"] == 1
    assert_withdrawn(s3, postgres, with_alice, "req-alice")
    assert not any(str(v) in out.getvalue() for v in ALICE_IDENTIFIERS[:4])

    assert set(trace(postgres, ALICE_IDENTIFIERS, alice_keys).values()) == {0}
    assert trace(postgres, BOB_IDENTIFIERS, bob_keys)["profiles"] == len(BOB_IDENTIFIERS)
    service = RetrievalService(postgres, lancedb, embedder=None)
    for ref in ALICE_IDENTIFIERS:
        bundle = service.context(ref, "Can I bring my dog?", k=1)
        assert bundle["customer"] is None and not bundle["customer_found"]
    assert service.context("crm:2", "refund", k=1)["customer_found"]
    lake = lake_questions(s3)
    assert not any(q.startswith("alpha zebra") for q in lake)
    assert "bravo yak refund question four" in lake and "charlie anonymous question six" in lake
    with_bob, text = export_finetune(s3, postgres, kafka)
    assert "alpha zebra" not in text and "bravo yak refund question four" in text
    with postgres.transaction() as cur:
        cur.execute("SELECT status, identifier_hashes, customer_id FROM erasure_requests"
                    " WHERE request_id = 'req-alice'")
        status, hashes, customer_id = cur.fetchone()
        cur.execute("SELECT kind FROM cluster_history WHERE customer_id = %s ORDER BY id",
                    (customer_id,))
        assert cur.fetchall()[-1] == ("retired",)
    assert status == "completed" and len(hashes) > 5
    assert not any(v.lower() in json.dumps(hashes).lower() for v in ALICE_IDENTIFIERS)
    # The suppression list that keeps her turns out holds keyed hashes, no reference of hers.
    with postgres.transaction() as cur:
        cur.execute("SELECT digest FROM erased_reference_hashes")
        suppressed = [digest for (digest,) in cur.fetchall()]
        cur.execute("SELECT count(*) FROM erased_customers")
        assert cur.fetchone()[0] == 0
    assert len(suppressed) >= len(ALICE_IDENTIFIERS)
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in suppressed)
    assert not any(v.lower() in json.dumps(suppressed).lower() for v in ALICE_IDENTIFIERS)

    # --- the same request again changes nothing; her CDC events redelivered or rebuilt from
    # the topics do not bring her back
    assert erase_cli(args, postgres=postgres, s3=s3, out=io.StringIO()) == 0
    publish(kafka, cdc_messages(kafka))
    (run,) = catch_up(kafka, postgres)
    assert metadata(run)["erased_skipped"] == 2 and metadata(run)["duplicates_skipped"] == 1
    assert set(trace(postgres, ALICE_IDENTIFIERS, alice_keys).values()) == {0}
    rebuild = materialize_customers(kafka, postgres)
    assert metadata(rebuild)["erased_skipped"] == 4
    assert set(trace(postgres, ALICE_IDENTIFIERS, alice_keys).values()) == {0}
    assert trace(postgres, BOB_IDENTIFIERS, bob_keys)["profiles"] == len(BOB_IDENTIFIERS)
    # ...nor does rebuilding the conversation log from its topic
    relog = materialize([conversation_log, feedback_scored], resources=resources)
    assert relog.asset_materializations_for_node("conversation_log")[0].metadata[
        "erased_skipped"].value == 3
    assert trace(postgres, ALICE_IDENTIFIERS, alice_keys)["feedback_turns"] == 0
    assert not any(q.startswith("alpha zebra") for q in lake_questions(s3))

    # --- erase Bob through a Kafka event; a redelivery and a bad event change nothing more
    events = [{"customer_ref": "bob.stone@example.org", "request_id": "req-bob"},
              {"customer_ref": "bob.stone@example.org", "request_id": "req-bob"},
              {"customer_ref": "x" * 500}, {"no_ref": True}]
    publish_json(kafka, "privacy.erasure", events)
    (request,) = plan_tick(ERASURE_RANGES, None, kafka, postgres,
                           DagsterInstance.ephemeral()).run_requests
    result = materialize([customer_erasures], resources=resources, run_config=request.run_config)
    assert result.success
    meta = {k: v.value for k, v in
            result.asset_materializations_for_node("customer_erasures")[0].metadata.items()}
    assert meta["requests_applied"] == 1 and meta["requests_already_done"] == 1
    assert meta["dead_letters"] == 2 and meta["customers_erased"] == 1
    assert meta["lake_rows_removed"] == 2 and meta["requests_completed"] == 1
    assert meta["finetune_exports_withdrawn"] == 1
    assert_withdrawn(s3, postgres, with_bob, "req-bob")
    assert "bob" not in json.dumps(meta, default=str).lower()
    assert set(trace(postgres, BOB_IDENTIFIERS, bob_keys).values()) == {0}
    assert set(lake_questions(s3)) == {"charlie anonymous question six"}
    # The range is in the ledger: running it again applies nothing.
    again = materialize([customer_erasures], resources=resources, run_config=request.run_config)
    meta = again.asset_materializations_for_node("customer_erasures")[0].metadata
    assert meta["ranges_already_applied"].value == 1 and meta["requests_applied"].value == 0


def test_an_export_racing_an_erasure_either_precedes_it_or_leaves_the_person_out(
        kafka, postgres, s3):
    """An export that reads the lake while an erasure is uncommitted waits for it, then leaves
    the person out: no export is recorded between an erasure's commit and its lake rewrite
    holding the person's turns."""
    from rag_assets.privacy.erasure import erase_in_postgres
    from rag_assets.feedback import finetune_export, lake_store

    publish(kafka, cdc_messages(kafka))
    catch_up(kafka, postgres)
    publish_json(kafka, "app.feedback", FEEDBACK, key=lambda v: v["conversation_id"].encode())
    resources = {"kafka": kafka, "s3": s3, "postgres": postgres, "sentiment": SentimentResource()}
    assert materialize([conversation_log, feedback_scored], resources=resources).success
    exports = []

    def export() -> None:
        with postgres.transaction() as cur:
            exports.append(finetune_export.export(cur, s3, lake_store.s3_client(s3), None))

    with postgres.transaction() as cur:
        assert erase_in_postgres(cur, postgres.db_schema, "crm:1", "req-race").status == \
            "lake_pending"
        exporter = threading.Thread(target=export)
        exporter.start()
        exporter.join(3)
        assert exporter.is_alive() and not exports  # waiting for the erasure to commit
    exporter.join(60)
    (result,) = exports
    text = result.dataset.to_jsonl().decode()
    assert "alpha zebra" not in text and "bravo yak refund question four" in text
