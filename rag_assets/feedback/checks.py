"""Asset checks of the feedback group: late drops, KPI consistency and freshness, dead letters."""

from dagster import AssetCheckResult, AssetCheckSeverity, asset_check

from rag_assets.feedback import ingest, kpi_store, watermark_store
from rag_assets.feedback.assets import (
    conversation_log,
    ensure_feedback_schema,
    feedback_scored,
    kpi_daily,
    kpi_hourly,
)
from rag_assets.feedback.events import DEAD_LETTER_SOURCE
from rag_assets.feedback.streaming import MAX_LAG_EVENTS
from rag_assets.feedback.windows import Granularity
from rag_assets.platform.kafka_stream import ledger_lag_report
from rag_assets.platform.micro_batch import LagReport
from resources.kafka import KafkaResource
from resources.postgres import PostgresResource

MAX_LATE_DROP_SHARE = 0.02
MAX_DEAD_LETTER_SHARE = 0.01
MAX_KPI_LAG_HOURS = 2


@asset_check(asset=kpi_hourly, description=(
    f"Share of deliveries dropped as too late stays under {MAX_LATE_DROP_SHARE:.0%} (warn): "
    "more means producers lag beyond the allowed lateness."))
def late_drop_share(postgres: PostgresResource) -> AssetCheckResult:
    with postgres.transaction() as cur:
        ensure_feedback_schema(cur, postgres)
        dropped = kpi_store.total_late_drops(cur, Granularity.DAY)
        cur.execute("SELECT count(*) FROM feedback_turns")
        accepted = int(cur.fetchone()[0])
    share = dropped / (dropped + accepted) if dropped + accepted else 0.0
    return AssetCheckResult(passed=share <= MAX_LATE_DROP_SHARE, severity=AssetCheckSeverity.WARN,
                            metadata={"dropped_late": dropped, "accepted_turns": accepted,
                                      "late_drop_share": round(share, 6)})


def _totals(postgres: PostgresResource, granularity: Granularity) -> AssetCheckResult:
    with postgres.transaction() as cur:
        ensure_feedback_schema(cur, postgres)
        cur.execute("SELECT count(*) FROM feedback_turns WHERE satisfaction IS NOT NULL")
        scored = int(cur.fetchone()[0])
        counted = kpi_store.table_summary(cur, granularity)["turns"]
        pending = kpi_store.pending_count(cur, granularity)
    return AssetCheckResult(passed=scored == counted and pending == 0, metadata={
        "scored_turns": scored, "turns_in_table": counted, "windows_queued": pending})


@asset_check(asset=kpi_hourly, description=(
    "Every scored turn is counted exactly once in `kpi_hourly`, and no hourly window is left "
    "queued."))
def kpi_hourly_counts_every_turn(postgres: PostgresResource) -> AssetCheckResult:
    return _totals(postgres, Granularity.HOUR)


@asset_check(asset=kpi_daily, description=(
    "Every scored turn is counted exactly once in `kpi_daily`, and no daily window is left queued."))
def kpi_daily_counts_every_turn(postgres: PostgresResource) -> AssetCheckResult:
    return _totals(postgres, Granularity.DAY)


@asset_check(asset=kpi_hourly, description=(
    f"KPI freshness: the newest hourly window is within {MAX_KPI_LAG_HOURS} h of the newest "
    "applied event time (warn)."))
def kpi_freshness(postgres: PostgresResource) -> AssetCheckResult:
    with postgres.transaction() as cur:
        ensure_feedback_schema(cur, postgres)
        frontiers = watermark_store.all_frontiers(cur)
        last_window = kpi_store.table_summary(cur, Granularity.HOUR)["last_window"]
    if not frontiers:
        return AssetCheckResult(passed=True, metadata={"note": "no events applied yet"})
    newest = max(frontiers.values())
    lag_h = None if last_window is None else (newest - last_window).total_seconds() / 3600
    return AssetCheckResult(
        passed=lag_h is not None and lag_h <= MAX_KPI_LAG_HOURS + 1,
        severity=AssetCheckSeverity.WARN,
        metadata={"newest_event_time": newest.isoformat(),
                  "last_window": last_window.isoformat() if last_window else None,
                  "lag_hours": None if lag_h is None else round(lag_h, 3)})


@asset_check(asset=feedback_scored, description="No stored turn is left unscored.")
def every_turn_scored(postgres: PostgresResource) -> AssetCheckResult:
    with postgres.transaction() as cur:
        ensure_feedback_schema(cur, postgres)
        cur.execute("SELECT count(*) FILTER (WHERE satisfaction IS NULL), count(*) FROM feedback_turns")
        unscored, total = cur.fetchone()
    return AssetCheckResult(passed=unscored == 0, metadata={"unscored": int(unscored),
                                                            "turns": int(total)})


@asset_check(asset=conversation_log, description=(
    f"Dead letters from `app.feedback` stay under {MAX_DEAD_LETTER_SHARE:.0%} of events read (warn)."))
def feedback_dead_letter_share(postgres: PostgresResource) -> AssetCheckResult:
    with postgres.transaction() as cur:
        ensure_feedback_schema(cur, postgres)
        cur.execute("SELECT count(*) FROM dead_letters WHERE source = %s AND replayed_at IS NULL",
                    (DEAD_LETTER_SOURCE,))
        letters = int(cur.fetchone()[0])
        cur.execute("SELECT coalesce(sum(row_count), 0) FROM conversation_lake_objects")
        landed = int(cur.fetchone()[0])
    total = letters + landed
    share = letters / total if total else 0.0
    return AssetCheckResult(passed=share <= MAX_DEAD_LETTER_SHARE, severity=AssetCheckSeverity.WARN,
                            metadata={"dead_letters_pending": letters, "lake_rows": landed,
                                      "dead_letter_share": round(share, 6)})


@asset_check(asset=conversation_log, description=(
    f"Processing lag: feedback events retained in Kafka but not yet applied stay under "
    f"{MAX_LAG_EVENTS:,} (RAG_MAX_FEEDBACK_LAG_EVENTS). The streaming sensor reports this check "
    "every minute and whenever it flips."))
def feedback_lag(kafka: KafkaResource, postgres: PostgresResource) -> AssetCheckResult:
    report = feedback_lag_report(kafka, postgres)
    return AssetCheckResult(passed=report.passed, metadata=report.metadata)


def feedback_lag_report(kafka: KafkaResource, postgres: PostgresResource) -> LagReport:
    return ledger_lag_report(kafka, postgres, ensure_feedback_schema, ingest.CONSUMER,
                             ingest.FEEDBACK_TOPIC_PATTERN, MAX_LAG_EVENTS)


feedback_checks = [feedback_lag, late_drop_share, kpi_hourly_counts_every_turn, kpi_daily_counts_every_turn,
                   kpi_freshness, every_turn_scored, feedback_dead_letter_share]
