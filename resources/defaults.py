"""The resources of a deployment, every setting read from the environment."""

from __future__ import annotations

from dagster import EnvVar

from rag_assets.catalogue import active_catalogue
from rag_assets.platform.db_roles import reader_login_env
from rag_assets.platform.pg_connection import DEFAULT_SCHEMA, PG_ENV_VARS, SCHEMA_ENV_VAR
from resources.embedder import embedder_resource_from_env
from resources.env import given
from resources.env import optional_env as _optional
from resources.kafka import KAFKA_ENV_VARS, KafkaResource
from resources.lancedb import LanceDBResource
from resources.postgres import PostgresResource
from resources.s3 import S3Storage
from resources.sentiment import sentiment_resource_from_env


def production_resources() -> dict:
    return {
        "kafka": _kafka(),
        "s3": S3Storage(
            endpoint_url=_optional("S3_ENDPOINT_URL"),
            region_name=EnvVar("AWS_REGION"),
            aws_access_key_id=EnvVar("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=EnvVar("AWS_SECRET_ACCESS_KEY"),
            knowledge_bucket=EnvVar("RAG_KB_BUCKET"),
            knowledge_prefix=active_catalogue().knowledge.prefix,
            lake_bucket=EnvVar("RAG_LAKE_BUCKET"),
        ),
        "postgres": _postgres(),
        "embedder": embedder_resource_from_env(),
        "sentiment": sentiment_resource_from_env(),
        "lancedb": LanceDBResource(
            uri=EnvVar("LANCEDB_URI"),
            s3_endpoint_url=_optional("S3_ENDPOINT_URL"),
            aws_access_key_id=EnvVar("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=EnvVar("AWS_SECRET_ACCESS_KEY"),
        ),
    }


def _kafka() -> KafkaResource:
    """Kafka as `kafka_from_env` reads it, but as EnvVars resolved when a run or sensor starts,
    so the SASL password is never a value in the resource's config. Settings left unset (no
    SASL, the default PLAINTEXT) keep the resource's defaults."""
    settings = given(**{field: _optional(name) for field, name in KAFKA_ENV_VARS.items()})
    settings["bootstrap_servers"] = EnvVar("KAFKA_BOOTSTRAP_SERVERS")
    return KafkaResource(**settings, topic_prefix=_optional("RAG_TOPIC_PREFIX") or "")


def _postgres(user_env: str = PG_ENV_VARS["user"],
              password_env: str = PG_ENV_VARS["password"]) -> PostgresResource:
    return PostgresResource(
        host=EnvVar(PG_ENV_VARS["host"]),
        port=EnvVar.int(PG_ENV_VARS["port"]),
        user=EnvVar(user_env),
        password=EnvVar(password_env),
        database=EnvVar(PG_ENV_VARS["database"]),
        db_schema=_optional(SCHEMA_ENV_VAR) or DEFAULT_SCHEMA,
    )


def reader_postgres_from_environment() -> PostgresResource:
    """PostgreSQL for the retrieval endpoint and the read-only look-ups: as the retrieval role
    (RAG_RETRIEVAL_PGUSER, RAG_RETRIEVAL_PGPASSWORD) when one is configured, else as PGUSER."""
    return _postgres(*reader_login_env()).process_config_and_initialize()


def resource_from_environment(key: str):
    """One of the deployment's resources with its settings read now, for code outside a run
    (the CLI, the HTTP server, benchmarks)."""
    return production_resources()[key].process_config_and_initialize()
