"""Shared fixtures: the real local services, started once per test run, and per-test isolation.

The services are the project's own (`infra/`); ones already running are reused and left
running, ones this test run started are stopped at its end, by pid.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from infra import services
from infra.settings import InfraSettings, connection_env
from tests.naming import unique_name


@pytest.fixture(scope="session")
def infra_settings() -> InfraSettings:
    return InfraSettings.from_env()


@pytest.fixture(scope="session")
def local_services(infra_settings: InfraSettings) -> Iterator[dict[str, str]]:
    """Kafka, S3 and PostgreSQL up and healthy; yields the connection variables."""
    started = services.up(infra_settings)
    env = connection_env(infra_settings)
    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    yield env
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    services.down(infra_settings, only=set(started))


@contextmanager
def private_kafka(env: dict[str, str]) -> Iterator:
    """A KafkaResource whose topics (`kafka.topic("app.feedback")`) belong to its user alone;
    they are deleted afterwards."""
    from resources.kafka import kafka_from_env

    resource = kafka_from_env(topic_prefix=unique_name("t").replace("-", "_") + ".", env=env)
    yield resource
    resource.delete_prefixed_topics()


@contextmanager
def private_postgres(env: dict[str, str]) -> Iterator:
    """A PostgresResource on a schema of its own, dropped afterwards."""
    from resources.postgres import PostgresResource

    resource = PostgresResource(
        host=env["PGHOST"], port=int(env["PGPORT"]), user=env["PGUSER"],
        password=env["PGPASSWORD"], database=env["PGDATABASE"],
        db_schema=unique_name("test").replace("-", "_"),
    )
    yield resource
    with resource.transaction() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{resource.db_schema}" CASCADE')


@contextmanager
def private_s3(env: dict[str, str]) -> Iterator:
    """An S3Storage whose knowledge and lake bucket belongs to its user alone (emptied and
    deleted afterwards)."""
    from resources.s3 import S3Storage

    bucket = unique_name("test")
    resource = S3Storage(
        endpoint_url=env["S3_ENDPOINT_URL"], region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        knowledge_bucket=bucket, lake_bucket=bucket,
    )
    client = resource.get_client()
    client.create_bucket(Bucket=bucket)
    yield resource
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def kafka(local_services):
    """Kafka topics of this test alone (see `private_kafka`)."""
    with private_kafka(local_services) as resource:
        yield resource


@pytest.fixture
def postgres(local_services) -> Iterator:
    with private_postgres(local_services) as resource:
        yield resource


@pytest.fixture
def s3(local_services) -> Iterator:
    with private_s3(local_services) as resource:
        yield resource


@pytest.fixture
def lancedb(tmp_path, request):
    """A local LanceDB directory; with RAG_TEST_LANCEDB_ON_S3=1, a prefix of the test's own
    bucket in the local S3 instead (how a deployment beyond one machine stores it)."""
    from resources.lancedb import LanceDBResource

    if os.environ.get("RAG_TEST_LANCEDB_ON_S3") != "1":
        return LanceDBResource(uri=str(tmp_path / "lancedb"))
    s3 = request.getfixturevalue("s3")
    return LanceDBResource(uri=f"s3://{s3.knowledge_bucket}/lancedb", s3_endpoint_url=s3.endpoint_url,
                           aws_access_key_id=s3.aws_access_key_id,
                           aws_secret_access_key=s3.aws_secret_access_key, aws_region=s3.region_name)


@pytest.fixture
def bedrock_standin(monkeypatch):
    """The local Bedrock Runtime InvokeModel stand-in (`tests/unit/knowledge/bedrock_standin.py`)."""
    from tests.unit.knowledge.bedrock_standin import BedrockStandin

    # Dummy credentials: the stand-in ignores the signature, but botocore will not sign without
    # them. Set per test, so the real services' keys (integration tests) come back afterwards.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with BedrockStandin() as standin:
        yield standin


@pytest.fixture
def streaming_workers():
    """Streaming sensors' workers started by a test are stopped after it."""
    from sensors.stream_worker import stop_workers

    yield
    stop_workers()
