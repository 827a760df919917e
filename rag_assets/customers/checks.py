"""Asset checks of the customers group: lag behind Kafka, work left queued, implausible
clusters, incomplete profiles. No check puts a customer's data in its metadata."""

from dagster import AssetCheckResult, AssetCheckSeverity, asset_check

from rag_assets.customers.assets import (
    customer_profiles,
    ensure_customer_schema,
    identity_graph,
    source_records,
)
from rag_assets.customers.cdc_apply import CONSUMER, cdc_topic_pattern
from rag_assets.customers.streaming import MAX_LAG_EVENTS
from rag_assets.platform.kafka_stream import ledger_lag_report
from rag_assets.platform.micro_batch import LagReport
from resources.kafka import KafkaResource
from resources.postgres import PostgresResource

MAX_CLUSTER_RECORDS = 50
MIN_COMPLETE_SHARE = 0.9


@asset_check(asset=source_records, description=(
    f"Processing lag: CDC events retained in Kafka but not yet applied stay under "
    f"{MAX_LAG_EVENTS:,} (RAG_MAX_CDC_LAG_EVENTS); more means the pipeline is falling behind "
    "its sources. The streaming sensor reports this check every minute and whenever it flips."))
def cdc_lag(kafka: KafkaResource, postgres: PostgresResource) -> AssetCheckResult:
    report = cdc_lag_report(kafka, postgres)
    return AssetCheckResult(passed=report.passed, metadata=report.metadata)


def cdc_lag_report(kafka: KafkaResource, postgres: PostgresResource) -> LagReport:
    return ledger_lag_report(kafka, postgres, ensure_customer_schema, CONSUMER,
                             cdc_topic_pattern(), MAX_LAG_EVENTS)


@asset_check(asset=identity_graph, description=(
    "No changed record is left waiting for the identity graph, and no cluster holds more than "
    f"{MAX_CLUSTER_RECORDS} records (warn): a giant cluster usually means an identifier shared "
    "by strangers (a call-centre phone, a travel agent's email) is linking them."))
def identity_graph_settled(postgres: PostgresResource) -> AssetCheckResult:
    with postgres.transaction() as cur:
        ensure_customer_schema(cur, postgres)
        cur.execute("SELECT count(*) FROM identity_pending")
        pending = cur.fetchone()[0]
        cur.execute("SELECT coalesce(max(n), 0), count(*) FILTER (WHERE n > %s) FROM"
                    " (SELECT count(*) AS n FROM customer_assignments GROUP BY customer_id) s",
                    (MAX_CLUSTER_RECORDS,))
        largest, oversized = cur.fetchone()
    return AssetCheckResult(
        passed=pending == 0 and oversized == 0,
        severity=AssetCheckSeverity.WARN,
        metadata={"records_pending": pending, "largest_cluster": largest,
                  "clusters_over_limit": oversized})


@asset_check(asset=customer_profiles, description=(
    f"At least {MIN_COMPLETE_SHARE:.0%} of profiles have a name and a way to reach the customer "
    "(email or phone), and no profile is left queued (warn)."))
def profiles_complete(postgres: PostgresResource) -> AssetCheckResult:
    with postgres.transaction() as cur:
        ensure_customer_schema(cur, postgres)
        cur.execute(
            "SELECT count(*), count(*) FILTER (WHERE profile->'golden' ? 'surname'"
            " AND (profile->'golden' ? 'email' OR profile->'golden' ? 'phone'))"
            " FROM customer_profiles")
        total, complete = cur.fetchone()
        cur.execute("SELECT count(*) FROM profile_pending")
        pending = cur.fetchone()[0]
    share = complete / total if total else 1.0
    return AssetCheckResult(
        passed=share >= MIN_COMPLETE_SHARE and pending == 0,
        severity=AssetCheckSeverity.WARN,
        metadata={"profiles": total, "complete_share": round(share, 4), "profiles_pending": pending})


customer_checks = [cdc_lag, identity_graph_settled, profiles_complete]
