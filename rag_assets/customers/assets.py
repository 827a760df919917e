"""Customer 360 assets: source records → identity graph → customer profiles.

Thin Dagster wiring: the decisions live in the plain modules beside this one.
"""


from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from rag_assets.catalogue import active_catalogue
from rag_assets.catalogue.assets import source_table_key
from rag_assets.customers import cdc_apply, identity_linking, profile_refresh, source_store
from rag_assets.customers.identity_store import PostgresIdentityStore
from rag_assets.platform import offset_ledger
from rag_assets.platform.asset_conventions import OWNER, STREAMED, table_schema
from rag_assets.platform.db import drain, drain_in_processes, ensure_schema
from rag_assets.platform.kafka_ingest import OffsetRangesConfig, ranges_as_dicts, rebuild_ranges
from resources.kafka import KafkaResource
from rag_assets.platform.pg_connection import in_transaction
from resources.postgres import PostgresResource

CUSTOMER_SCHEMA_FILES = (("rag_assets.customers", "schema.sql"),)


def ensure_customer_schema(cur, postgres: PostgresResource) -> None:
    ensure_schema(cur, postgres.db_schema, CUSTOMER_SCHEMA_FILES)


@asset(
    group_name="customers",
    freshness_policy=STREAMED,
    deps=[source_table_key(table) for table in active_catalogue().tables],
    kinds={"kafka", "postgres", "python"},
    owners=[OWNER],
    description=(
        "Current state of every source record from the CDC topics of the source catalogue "
        "(`RAG_SOURCE_CATALOGUE`): Debezium (with or without the schema wrapper) and AWS "
        "DMS messages, ops c/u/d/r/t and tombstones. Duplicates change nothing and an older "
        "version never overwrites a newer one. Sensor runs apply offset ranges exactly once; "
        "materialised by hand it is rebuilt from the earliest retained offsets."
    ),
    metadata={"dagster/column_schema": table_schema(
        ("system", "text", "source system, as the catalogue names it"),
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
        ranges = rebuild_ranges(kafka, cdc_apply.cdc_topic_pattern())
        with postgres.transaction() as cur:
            ensure_customer_schema(cur, postgres)
            source_store.clear(cur)
            offset_ledger.forget(cur, cdc_apply.CONSUMER)
            # Everything derived from the old state is derived again.
            identity_linking.queue_every_record(cur)
            profile_refresh.queue_every_customer(cur)
            with kafka.range_reader() as read:
                for rng in ranges:
                    cdc_apply.apply_range(cur, kafka, rng, stats, context.run.run_id, read=read)
    else:
        ranges = config.ranges
        with postgres.transaction() as cur:
            ensure_customer_schema(cur, postgres)
        # One Kafka consumer and one PostgreSQL connection for every range of the run; each
        # range is applied in its own transaction.
        with kafka.range_reader() as read, postgres.connection() as conn:
            for rng in ranges:
                with in_transaction(conn) as cur:
                    cdc_apply.apply_range(cur, kafka, rng, stats, context.run.run_id, read=read)
    context.log.info(f"applied {stats.outcomes['applied']} of {stats.events_read} CDC events")
    return MaterializeResult(metadata={
        **stats.metadata(),
        "mode": "rebuild" if config.is_rebuild else "incremental",
        "offset_ranges": MetadataValue.json(ranges_as_dicts(stats.claimed)),
        "events_by_table": MetadataValue.json(dict(stats.tables)),
    })


class DerivedAssetConfig(Config):
    rebuild: bool = Field(
        default=True,
        description="Recompute from all upstream state (the default when materialised by hand). "
        "Sensor runs set false and take only the changes queued by the upstream asset.",
    )


@asset(
    group_name="customers",
    freshness_policy=STREAMED,
    deps=[source_records],
    kinds={"postgres", "python"},
    owners=[OWNER],
    description=(
        "Who is who across systems. Nodes are source records; edges carry the rule and score "
        "that linked them: deterministic on normalised email, E.164 phone, loyalty number and "
        "national id, fuzzy on name + date of birth + address within blocking keys. "
        "Incremental: a changed record is relinked within its neighbourhood, and removing the "
        "only link splits a cluster. Customer ids are stable (the oldest record's id survives "
        "a merge) and every merge and split is kept in `cluster_history`."
    ),
    metadata={"dagster/column_schema": table_schema(
        ("identity_edges.a_key, b_key", "text", "the linked records"),
        ("identity_edges.rule", "text", "rule that made the edge"),
        ("identity_edges.score", "float", "match score"),
        ("customer_assignments.customer_id", "text", "stable customer id of a record"),
        ("cluster_history.kind", "text", "created, merged, split or retired"),
    )},
)
def identity_graph(context: AssetExecutionContext, config: DerivedAssetConfig,
                   postgres: PostgresResource) -> MaterializeResult:
    stats = identity_linking.LinkStats()
    with postgres.transaction() as cur:
        ensure_customer_schema(cur, postgres)
        if config.rebuild:
            identity_linking.queue_every_record(cur)
            profile_refresh.queue_every_customer(cur)
    store = PostgresIdentityStore()  # what one batch reads of the graph serves the next ones
    drain(postgres, lambda cur: identity_linking.link_batch(cur, stats, context.run.run_id,
                                                            store=store))
    with postgres.transaction() as cur:
        summary = identity_linking.cluster_summary(cur)
    return MaterializeResult(metadata={
        **stats.metadata(), **summary,
        "mode": "rebuild" if config.rebuild else "incremental",
        "edges_added_by_rule": MetadataValue.json(dict(stats.edge_rules)),
    })


class ProfilesConfig(DerivedAssetConfig):
    processes: int = Field(
        default=2, ge=1,
        description="Processes rebuilding profiles at once when many are queued (one per core "
        "is the most that helps; each takes its own customers with SKIP LOCKED).",
    )


@asset(
    group_name="customers",
    freshness_policy=STREAMED,
    deps=[identity_graph],
    kinds={"postgres", "python"},
    owners=[OWNER],
    description=(
        "One golden record per customer: survivorship by the source catalogue's source "
        "priority (names, birth date and address by default) or recency (email and phone); "
        "every email, phone and address; the sections of its membership and activity tables; "
        "the last interactions. Each golden field names the source record and CDC offset it came from. "
        "A profile is rewritten (version + 1) only when its content changed."
    ),
    metadata={"dagster/column_schema": table_schema(
        ("customer_id", "text", "stable customer id"),
        ("profile", "jsonb", "golden record, contact lists, activity, provenance"),
        ("content_hash", "text", "hash of the profile content"),
        ("version", "integer", "incremented on every content change"),
        ("updated_at", "timestamptz", "when this version was written"),
    )},
)
def customer_profiles(config: ProfilesConfig, postgres: PostgresResource) -> MaterializeResult:
    with postgres.transaction() as cur:
        ensure_customer_schema(cur, postgres)
        if config.rebuild:
            profile_refresh.queue_every_customer(cur)
        processes = config.processes if profile_refresh.worth_a_second_process(cur) else 1
    parts = drain_in_processes(postgres, profile_refresh.refresh_batch,
                               profile_refresh.RefreshStats, processes)
    stats = profile_refresh.RefreshStats.total(parts)
    with postgres.transaction() as cur:
        cur.execute("SELECT count(*) FROM customer_profiles")
        total = cur.fetchone()[0]
    return MaterializeResult(metadata={
        **stats.metadata(), "profiles_total": total,
        "profiles_taken_by_process": MetadataValue.json(
            [p.profiles_written + p.profiles_unchanged + p.profiles_removed for p in parts]),
        "mode": "rebuild" if config.rebuild else "incremental",
    })
