"""Customer 360 assets: source records → identity graph → customer profiles.

Thin Dagster wiring: the decisions live in the plain modules beside this one.
"""


from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from rag_assets.customers import cdc_apply, source_store
from rag_assets.platform import offset_ledger
from rag_assets.platform.asset_conventions import OWNER, table_schema
from rag_assets.platform.db import ensure_schema
from rag_assets.platform.kafka_ingest import OffsetRangesConfig, rebuild_ranges
from resources.kafka import KafkaResource
from resources.postgres import PostgresResource

CUSTOMER_SCHEMA_FILES = (("rag_assets.customers", "schema.sql"),)


def ensure_customer_schema(cur, postgres: PostgresResource) -> None:
    ensure_schema(cur, postgres.db_schema, CUSTOMER_SCHEMA_FILES)


@asset(
    group_name="customers",
    kinds={"kafka", "postgres", "python"},
    owners=[OWNER],
    description=(
        "Current state of every source record (CRM, bookings, loyalty, support) from the CDC "
        "topics `cdc.<system>.<table>`: Debezium (with or without the schema wrapper) and AWS "
        "DMS messages, ops c/u/d/r/t and tombstones. Duplicates change nothing and an older "
        "version never overwrites a newer one. Sensor runs apply offset ranges exactly once; "
        "materialised by hand it is rebuilt from the earliest retained offsets."
    ),
    metadata={"dagster/column_schema": table_schema(
        ("system", "text", "source system, e.g. crm"),
        ("table_name", "text", "source table"),
        ("pk", "text", "primary key, canonical form"),
        ("row_data", "jsonb", "the row; NULL once deleted"),
        ("version", "jsonb", "source version: ts_ms, lsn, version column"),
        ("topic, partition, offset", "text/int/bigint", "the event that produced this state"),
    )},
)
def source_records(context: AssetExecutionContext, config: OffsetRangesConfig,
                   kafka: KafkaResource, postgres: PostgresResource) -> MaterializeResult:
    stats = cdc_apply.ApplyStats()
    if config.is_rebuild:
        ranges = rebuild_ranges(kafka, cdc_apply.CDC_TOPIC_PATTERN)
        with postgres.transaction() as cur:
            ensure_customer_schema(cur, postgres)
            source_store.clear(cur)
            offset_ledger.forget(cur, cdc_apply.CONSUMER)
            for rng in ranges:
                cdc_apply.apply_range(cur, kafka, rng, stats, context.run.run_id)
    else:
        ranges = config.ranges
        with postgres.transaction() as cur:
            ensure_customer_schema(cur, postgres)
        for rng in ranges:
            with postgres.transaction() as cur:
                cdc_apply.apply_range(cur, kafka, rng, stats, context.run.run_id)
    context.log.info(f"applied {stats.outcomes['applied']} of {stats.events_read} CDC events")
    return MaterializeResult(metadata={
        **stats.metadata(),
        "mode": "rebuild" if config.is_rebuild else "incremental",
        "offset_ranges": MetadataValue.json([
            {"topic": r.topic, "partition": r.partition, "start": r.start, "end": r.end}
            for r in ranges
        ]),
        "events_by_table": MetadataValue.json(dict(stats.tables)),
    })
