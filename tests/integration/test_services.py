"""One round trip per real service: what every pipeline relies on."""

import hashlib
import os

import pyarrow as pa
import pytest
from dagster import AssetExecutionContext, MaterializeResult, asset, materialize

from rag_assets.platform import offset_ledger
from rag_assets.platform.db import ensure_schema
from resources.kafka import KafkaResource
from resources.postgres import PostgresResource

pytestmark = pytest.mark.integration


def test_kafka_produce_and_read_an_exact_offset_range(kafka):
    topic = kafka.topic("orders")
    kafka.create_topics([topic], partitions=2)
    producer = kafka.producer()
    for n in range(20):
        producer.send(topic, key=f"k{n % 4}".encode(), value=f"v{n}".encode(), partition=n % 2)
    producer.flush()
    producer.close()

    bounds = {tp.partition: b for tp, b in kafka.offset_bounds([topic]).items()}
    assert bounds == {0: (0, 10), 1: (0, 10)}
    records = kafka.read_range(topic, 1, 3, 7)
    assert [r.offset for r in records] == [3, 4, 5, 6]
    assert [r.value for r in records] == [b"v7", b"v9", b"v11", b"v13"]


def test_s3_put_list_delete_with_etags(s3):
    client, bucket = s3.get_client(), s3.knowledge_bucket
    body = b"# Baggage\nOne cabin bag of 8 kg."
    put = client.put_object(Bucket=bucket, Key="knowledge-base/baggage.md", Body=body)
    assert put["ETag"].strip('"') == hashlib.md5(body).hexdigest()

    listed = client.list_objects_v2(Bucket=bucket, Prefix="knowledge-base/")["Contents"]
    assert [(o["Key"], o["ETag"]) for o in listed] == [("knowledge-base/baggage.md", put["ETag"])]

    client.delete_object(Bucket=bucket, Key="knowledge-base/baggage.md")
    assert client.list_objects_v2(Bucket=bucket, Prefix="knowledge-base/").get("KeyCount") == 0


def test_postgres_ledger_commits_with_the_data_and_rolls_back_with_it(postgres):
    with postgres.transaction() as cur:
        ensure_schema(cur, postgres.db_schema)
        cur.execute("CREATE TABLE items (n int)")

    with postgres.transaction() as cur:
        assert offset_ledger.claim(cur, "items", "t", 0, (0, 10)) == [(0, 10)]
        cur.execute("INSERT INTO items SELECT generate_series(0, 9)")

    with pytest.raises(RuntimeError):
        with postgres.transaction() as cur:
            assert offset_ledger.claim(cur, "items", "t", 0, (10, 20)) == [(10, 20)]
            cur.execute("INSERT INTO items VALUES (10)")
            raise RuntimeError("run killed half-way")

    with postgres.transaction() as cur:
        assert offset_ledger.claim(cur, "items", "t", 0, (0, 15)) == [(10, 15)]
        cur.execute("SELECT count(*) FROM items")
        assert cur.fetchone()[0] == 10
        assert offset_ledger.applied_ranges(cur, "items", "t", 0) == [(0, 15)]


def test_lancedb_write_and_read_back(lancedb):
    db = lancedb.connect()
    table = db.create_table("chunks", pa.table({
        "chunk_id": ["a#0", "a#1"], "vector": [[1.0, 0.0], [0.0, 1.0]],
    }))
    hits = table.search([0.9, 0.1]).limit(1).to_list()
    assert hits[0]["chunk_id"] == "a#0"
    assert table.count_rows() == 2


def test_dagster_materializes_an_asset_that_uses_kafka_and_postgres(kafka, postgres):
    topic = kafka.topic("events")
    kafka.create_topics([topic], partitions=1)
    producer = kafka.producer()
    for n in range(5):
        producer.send(topic, value=str(n).encode())
    producer.flush()
    producer.close()

    @asset
    def event_sum(context: AssetExecutionContext, kafka: KafkaResource,
                  postgres: PostgresResource) -> MaterializeResult:
        records = kafka.read_range(topic, 0, 0, 5)
        total = sum(int(r.value) for r in records)
        with postgres.transaction() as cur:
            ensure_schema(cur, postgres.db_schema)
            cur.execute("CREATE TABLE IF NOT EXISTS sums (total int)")
            cur.execute("INSERT INTO sums VALUES (%s)", (total,))
        return MaterializeResult(metadata={"events": len(records), "total": total})

    result = materialize([event_sum], resources={"kafka": kafka, "postgres": postgres})
    assert result.success
    metadata = result.asset_materializations_for_node("event_sum")[0].metadata
    assert metadata["events"].value == 5 and metadata["total"].value == 10
    with postgres.transaction() as cur:
        cur.execute("SELECT total FROM sums")
        assert cur.fetchall() == [(10,)]


def test_the_state_directory_is_closed_to_other_users(infra_settings, local_services):
    """Its secrets, data and logs are readable by their owner only; the group keeps at most the
    traverse bit that lets the database server's own user (group) reach its data directory."""
    import stat

    state = infra_settings.state_dir
    mode = stat.S_IMODE(state.stat().st_mode)
    assert mode & 0o067 == 0, oct(mode)
    assert stat.S_IMODE((state / "secrets.env").stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "postgres" / "data").stat().st_mode) == 0o700


def test_an_unusable_state_directory_is_a_clear_error_not_a_traceback(tmp_path):
    import subprocess
    import sys

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = subprocess.run([sys.executable, "-m", "rag_assets.cli", "infra", "up"],
                            env={**os.environ, "RAG_STATE_DIR": str(blocker / "state")},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"rag-assets infra: cannot use the state directory {blocker / 'state'} (RAG_STATE_DIR): "
        "Not a directory; point RAG_STATE_DIR at a directory this user can create and write")


@pytest.mark.parametrize("credentials, refused_with", [
    ({"aws_secret_access_key": "not-the-secret"}, "SignatureDoesNotMatch"),
    ({"aws_access_key_id": "no-such-key"}, "InvalidAccessKeyId"),
])
def test_the_s3_server_refuses_a_request_not_signed_with_its_credentials(
        s3, credentials, refused_with):
    import boto3
    from botocore.exceptions import ClientError

    honest = {"aws_access_key_id": s3.aws_access_key_id,
              "aws_secret_access_key": s3.aws_secret_access_key}
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name=s3.region_name,
                          **{**honest, **credentials})
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=s3.knowledge_bucket, Key="knowledge-base/forged.md", Body=b"x")
    assert refused.value.response["Error"]["Code"] == refused_with
    listed = s3.get_client().list_objects_v2(Bucket=s3.knowledge_bucket, Prefix="knowledge-base/")
    assert listed.get("KeyCount") == 0


def test_the_s3_server_refuses_an_unsigned_request(s3):
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import ClientError

    anonymous = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name=s3.region_name,
                             config=Config(signature_version=UNSIGNED))
    with pytest.raises(ClientError) as refused:
        anonymous.list_objects_v2(Bucket=s3.knowledge_bucket)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
