"""finetune_dataset against real Kafka, S3 and PostgreSQL: personal data masked, erased customers
left out, near duplicates removed, a manifest beside the JSONL, idempotent versions."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from dagster import materialize
from psycopg.types.json import Jsonb

from rag_assets.feedback.assets import conversation_log, ensure_feedback_schema, finetune_dataset

pytestmark = pytest.mark.integration

T0 = datetime(2025, 2, 3, 9, tzinfo=timezone.utc)
PERSONAL = ["ingrid.fairweather@example.com", "+44 7700 900123", "4111 1111 1111 1111",
            "Ingrid", "Fairweather", "020 7946 0018"]


def event(n: int, question: str, answer: str, rating, customer_ref: str | None = "crm:1") -> dict:
    ts = T0 + timedelta(minutes=n)
    return {"conversation_id": f"conv-{n}", "turn_id": 1, "customer_ref": customer_ref,
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "question": question, "answer": answer,
            "model_id": "model-a", "latency_ms": 900, "retrieved_ids": ["refunds#1"],
            "rating": rating, "comment": None}


EVENTS = [
    event(1, "Hi, I'm Ingrid Fairweather, mail me at ingrid.fairweather@example.com about my refund",
          "Sure Ingrid, we will e-mail ingrid.fairweather@example.com within 3 days.", "up"),
    event(2, "Call me on +44 7700 900123 please, card 4111 1111 1111 1111 was charged twice",
          "We will call +44 7700 900123 and refund the card ending 1111.", 5),
    event(3, "My landline is 020 7946 0018, can you ring me about flight SK123?",
          "Yes, an agent will ring you about SK123.", 4),
    # near duplicate of event 3 (punctuation and case only)
    event(4, "my landline is 020 7946 0018 - can you ring me about flight SK123",
          "Yes, an agent will ring you about SK123!", "up"),
    event(5, "How heavy can my bag be?", "32 kg at most.", "down"),             # not well rated
    event(6, "Where is my lounge?", "Gate B, level 2.", 5, customer_ref="erased@example.com"),
    event(7, "What is the cabin bag size?", "55 x 40 x 23 cm including wheels.", 3),  # neutral
]


def publish(kafka, events) -> None:
    topic = kafka.topic("app.feedback")
    kafka.create_topics([topic], partitions=2)
    producer = kafka.producer()
    for e in events:
        producer.send(topic, key=e["conversation_id"].encode(), value=json.dumps(e).encode())
    producer.flush()
    producer.close()


def test_export_masks_personal_data_and_drops_erased_and_near_duplicates(kafka, s3, postgres):
    publish(kafka, EVENTS)
    resources = {"kafka": kafka, "s3": s3, "postgres": postgres}
    assert materialize([conversation_log], resources=resources).success  # rebuild from Kafka
    with postgres.transaction() as cur:
        ensure_feedback_schema(cur, postgres)
        # Suppressed as a version before the keyed hashes kept it: in clear, in the old table.
        cur.execute("INSERT INTO erased_customers (customer_ref) VALUES ('erased@example.com')")
        # The Customer 360 table, as the customers group creates it, with one golden record.
        cur.execute("CREATE TABLE customer_profiles (customer_id text PRIMARY KEY, profile jsonb)")
        cur.execute("INSERT INTO customer_profiles VALUES (%s, %s)", ("cust-1", Jsonb({"golden": {
            "given_name": {"value": "Ingrid"}, "surname": {"value": "Fairweather"}}})))

    result = materialize([finetune_dataset], resources=resources)
    assert result.success
    metadata = result.asset_materializations_for_node("finetune_dataset")[0].metadata
    assert metadata["records_in"].value == len(EVENTS)
    assert metadata["records_out"].value == 3
    assert metadata["near_duplicates_removed"].value == 1
    assert metadata["customer_profiles_available"].value is True
    assert metadata["filtered"].value["erased_customer"] == 1
    assert metadata["filtered"].value["not_well_rated"] == 2
    version = metadata["version"].value

    client = s3.get_client()
    body = client.get_object(Bucket=s3.lake_bucket, Key=f"finetune/{version}/train.jsonl")["Body"].read()
    text = body.decode()
    for value in PERSONAL:
        assert value not in text
    examples = [json.loads(line) for line in text.splitlines()]
    assert [m["role"] for m in examples[0]["messages"]] == ["system", "user", "assistant"]
    contents = " ".join(m["content"] for ex in examples for m in ex["messages"])
    for token in ("[EMAIL]", "[PHONE]", "[CARD]", "[NAME]"):
        assert token in contents
    assert "SK123" in contents and "lounge" not in contents
    manifest = json.loads(client.get_object(
        Bucket=s3.lake_bucket, Key=f"finetune/{version}/manifest.json")["Body"].read())
    assert manifest["version"] == version and manifest["records_out"] == 3
    assert "erased@example.com" not in json.dumps(manifest)
    with postgres.transaction() as cur:  # the old list was hashed and emptied on first read
        cur.execute("SELECT count(*) FROM erased_customers")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT digest FROM erased_reference_hashes")
        assert "erased" not in str(cur.fetchall())
    for value in metadata.values():
        for personal in PERSONAL:
            assert personal not in str(value)

    again = materialize([finetune_dataset], resources=resources)
    assert again.asset_materializations_for_node("finetune_dataset")[0].metadata["version"].value == version
    with postgres.transaction() as cur:
        cur.execute("SELECT count(*) FROM finetune_exports")
        assert cur.fetchone()[0] == 1


def test_a_person_erased_while_the_dataset_is_built_is_left_out(kafka, s3, postgres, monkeypatch):
    """The dataset is built before the erasure lock is taken (an erasure waiting on a long
    export would hold back every writer); one committed meanwhile makes the export build again."""
    from rag_assets.feedback import finetune_export
    from rag_assets.feedback.suppression import suppress
    from rag_assets.platform.erasure_lock import lock_for_erasure

    publish(kafka, EVENTS)
    resources = {"kafka": kafka, "s3": s3, "postgres": postgres}
    assert materialize([conversation_log], resources=resources).success
    built_with = []
    real_build = finetune_export.build_finetune_dataset

    def build_while_someone_is_erased(events, **kwargs):
        if not built_with:  # an erasure commits while the first build runs, not held back
            with postgres.transaction() as other:
                other.execute("SET LOCAL lock_timeout = '5s'")
                lock_for_erasure(other)
                suppress(other, ["crm:1"])
        built_with.append(len(kwargs["erased_customers"]))
        return real_build(events, **kwargs)

    monkeypatch.setattr(finetune_export, "build_finetune_dataset", build_while_someone_is_erased)
    result = materialize([finetune_dataset], resources=resources)
    metadata = result.asset_materializations_for_node("finetune_dataset")[0].metadata
    assert len(built_with) == 2 and built_with[0] == 0 < built_with[1]
    assert metadata["filtered"].value["erased_customer"] == 6  # every turn of crm:1
    assert metadata["records_out"].value == 1  # the one well-rated turn of someone else
