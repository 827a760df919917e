"""source_records against real Kafka and PostgreSQL: ranges applied once, rebuilds agree."""

import pytest
from dagster import materialize

from rag_assets.customers import source_store
from rag_assets.customers.assets import customer_profiles, identity_graph, source_records
from rag_assets.customers.source_state import RecordKey
from rag_assets.demo.debezium import DebeziumEncoder
from rag_assets.demo.source_systems import RowChange
from tests.integration.customers.helpers import sensor_tick

pytestmark = pytest.mark.integration

ALICE = {"id": 1, "first_name": "Alice", "last_name": "Moreau", "email": "alice@example.org",
         "phone": "+447700900001", "date_of_birth": "1985-02-11", "address_line1": "1 Quay St",
         "city": "Leeds", "postcode": "LS1 4AB", "country": "GB", "national_id": "QQ123456A"}
BOB = {**ALICE, "id": 2, "first_name": "Bob", "last_name": "Stone", "email": "bob@example.org",
       "phone": "+447700900002", "date_of_birth": "1971-06-30", "national_id": "QQ654321B",
       "address_line1": "9 Mill Rd"}
CARLA = {**ALICE, "id": 3, "first_name": "Carla", "last_name": "Ruiz", "email": "carla@example.org",
         "phone": None, "date_of_birth": "1990-12-01", "national_id": "QQ111111C",
         "address_line1": "4 Park Ave"}


def publish(kafka, messages, partitions=2):
    topics = sorted({m.topic for m in messages})
    kafka.create_topics(topics, partitions=partitions)
    producer = kafka.producer()
    for m in messages:
        producer.send(m.topic, key=m.key, value=m.value)
    producer.flush()
    producer.close()


def customer_changes(kafka):
    encoder = DebeziumEncoder(topic_prefix=kafka.topic_prefix)
    moved = {**ALICE, "city": "York", "postcode": "YO1 7HH"}
    update = encoder.change(RowChange("crm", "customers", "u", 1, ALICE, moved, "moved"), 2_000)
    return [
        *encoder.snapshot("crm", "customers", [ALICE, BOB, CARLA], 1_000),
        *update,
        *update,  # redelivered: must change nothing
        *encoder.change(RowChange("crm", "customers", "d", 2, BOB, None, "closed"), 3_000),
    ]


def live_state(postgres):
    with postgres.transaction() as cur:
        return source_store.live_rows(cur)


def test_sensor_ranges_are_applied_once_and_a_rebuild_gives_the_same_state(kafka, postgres):
    publish(kafka, customer_changes(kafka))

    result = sensor_tick(kafka, postgres)
    (request,) = result.run_requests
    run_config = request.run_config
    ranges = run_config["ops"]["source_records"]["config"]["ranges"]
    assert sum(r["end"] - r["start"] for r in ranges) == 7  # 3 reads, 2 updates, delete, tombstone
    assert request.run_key == ";".join(
        f"{r['topic']}/{r['partition']}:{r['start']}-{r['end']}" for r in ranges)

    resources = {"kafka": kafka, "postgres": postgres}
    customers = [source_records, identity_graph, customer_profiles]
    first = materialize(customers, resources=resources, run_config=run_config)
    assert first.success
    metadata = first.asset_materializations_for_node("source_records")[0].metadata
    assert metadata["events_applied"].value == 5  # 3 snapshot reads, update, delete
    assert metadata["duplicates_skipped"].value == 1
    expected = {
        RecordKey("crm", "customers", "1"): {**ALICE, "city": "York", "postcode": "YO1 7HH"},
        RecordKey("crm", "customers", "3"): CARLA,
    }
    state = live_state(postgres)
    assert {k: {c: v[c] for c in ("first_name", "city", "postcode")} for k, v in state.items()} == {
        k: {c: v[c] for c in ("first_name", "city", "postcode")} for k, v in expected.items()}

    again = materialize(customers, resources=resources, run_config=run_config)
    again_metadata = again.asset_materializations_for_node("source_records")[0].metadata
    assert again_metadata["events_read"].value == 0
    assert again_metadata["ranges_already_applied"].value == len(ranges)
    assert live_state(postgres) == state

    rebuilt = materialize(customers, resources=resources)
    assert rebuilt.asset_materializations_for_node("source_records")[0].metadata["mode"].value == "rebuild"
    assert live_state(postgres) == state


def test_sensor_skips_applied_ranges_and_requests_failed_ones_again(kafka, postgres):
    publish(kafka, customer_changes(kafka))
    first = sensor_tick(kafka, postgres)
    (request,) = first.run_requests

    # The run never happened (failed for good) and none is in flight: the range is requested
    # again, under a run key of its own.
    retry = sensor_tick(kafka, postgres, cursor=first.cursor)
    (again,) = retry.run_requests
    assert again.run_config == request.run_config
    assert again.run_key != request.run_key and again.run_key.startswith(request.run_key)

    customers = [source_records, identity_graph, customer_profiles]
    materialize(customers, resources={"kafka": kafka, "postgres": postgres},
                run_config=again.run_config)
    done = sensor_tick(kafka, postgres, cursor=retry.cursor)
    assert not done.run_requests
    assert done.cursor == first.cursor
