"""A customer pipeline with two customers and a small knowledge base embedded with MiniLM."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, materialize

from rag_assets.customers.assets import customer_profiles, identity_graph, source_records
from rag_assets.demo.debezium import DebeziumEncoder
from rag_assets.knowledge.assets import document_chunks, documents
from rag_assets.retrieval.context import RetrievalService
from resources.embedder import EmbedderResource
from sensors.customers import CDC_RANGES
from sensors.kafka_ranges import plan_tick

ALICE = {"id": 1, "first_name": "Alice", "last_name": "Moreau", "email": "alice@example.org",
         "phone": "+447700900001", "date_of_birth": "1985-02-11", "address_line1": "1 Quay St",
         "city": "Leeds", "postcode": "LS1 4AB", "country": "GB", "national_id": "QQ123456A"}
BOB = {**ALICE, "id": 2, "first_name": "Bob", "last_name": "Stone", "email": "bob@example.org",
       "phone": "+447700900002", "date_of_birth": "1971-06-30", "national_id": "QQ654321B",
       "address_line1": "9 Mill Rd", "city": "York"}

DOCUMENTS = {
    "baggage/cabin.md": "# Cabin baggage\n\nEach passenger may bring one cabin bag of up to 8 kg "
                        "and one small personal item such as a handbag or laptop bag.\n",
    "refunds/o'brien-policy.md": "# Refunds\n\nRefunds for cancelled flights go back to the "
                                 "original form of payment within seven working days.\n",
    "lounges/access.txt": "Lounge access is included for Gold members on long-haul flights, "
                          "with one guest allowed.\n",
}


def publish(kafka, messages):
    kafka.create_topics(sorted({m.topic for m in messages}), partitions=1)
    producer = kafka.producer()
    for m in messages:
        producer.send(m.topic, key=m.key, value=m.value)
    producer.flush()
    producer.close()


@pytest.fixture(scope="session")
def minilm_resource():
    return EmbedderResource()  # the real offline all-MiniLM-L6-v2


@pytest.fixture
def retrieval_world(kafka, postgres, s3, lancedb, minilm_resource):
    """Profiles for Alice and Bob, three documents indexed; yields (service, chunks run id)."""
    encoder = DebeziumEncoder(topic_prefix=kafka.topic_prefix)
    publish(kafka, encoder.snapshot("crm", "customers", [ALICE, BOB], 1_000))
    instance = DagsterInstance.ephemeral()
    (request,) = plan_tick(CDC_RANGES, None, kafka, postgres, instance).run_requests
    assert materialize([source_records, identity_graph, customer_profiles],
                       resources={"kafka": kafka, "postgres": postgres},
                       run_config=request.run_config, instance=instance).success

    client = s3.get_client()
    for name, body in DOCUMENTS.items():
        client.put_object(Bucket=s3.knowledge_bucket, Key=s3.knowledge_prefix + name,
                          Body=body.encode())
    result = materialize([documents, document_chunks], instance=instance, resources={
        "s3": s3, "postgres": postgres, "lancedb": lancedb, "kafka": kafka,
        "embedder": minilm_resource})
    assert result.success
    service = RetrievalService(postgres, lancedb, minilm_resource.get_embedder())
    return service, result.run_id
