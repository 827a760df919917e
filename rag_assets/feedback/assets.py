"""Feedback analytics assets: conversation lake → scored turns → KPI tables; fine-tuning export.

Thin Dagster wiring over the plain modules beside this one. Each downstream asset takes the work
its upstream queued in PostgreSQL in the same transaction as the upstream's data (sensor runs,
`rebuild: false`); materialised by hand (`rebuild: true`, the default) it recomputes everything
from stored state, which gives the same result.
"""

import time
from datetime import datetime, timedelta, timezone

from dagster import (
    AssetExecutionContext,
    AutomationCondition,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from rag_assets.feedback import (
    finetune_export,
    ingest,
    kpi_store,
    lake_store,
    scoring,
    turn_store,
)
from rag_assets.feedback.finetune import FinetuneConfig
from rag_assets.feedback.kpi_chart import chart_key, recent_rows, render_trend_png
from rag_assets.feedback.lake_layout import LAKE_PREFIX
from rag_assets.feedback.near_duplicates import NearDuplicateConfig
from rag_assets.feedback.windows import Granularity, LatenessPolicy
from rag_assets.platform.asset_conventions import OWNER, QUARTER_HOURLY, STREAMED, table_schema
from rag_assets.platform.db import drain, ensure_schema
from rag_assets.platform.kafka_ingest import OffsetRangesConfig, ranges_as_dicts, rebuild_ranges
from resources.kafka import KafkaResource
from resources.postgres import PostgresResource
from resources.s3 import S3Storage
from resources.sentiment import SentimentResource

FEEDBACK_SCHEMA_FILES = (("rag_assets.feedback", "schema.sql"),)
DEFAULT_ALLOWED_LATENESS_HOURS = 24.0


def ensure_feedback_schema(cur, postgres: PostgresResource) -> None:
    ensure_schema(cur, postgres.db_schema, FEEDBACK_SCHEMA_FILES)


class ConversationLogConfig(OffsetRangesConfig):
    allowed_lateness_hours: float = Field(
        default=DEFAULT_ALLOWED_LATENESS_HOURS,
        description="How far behind its partition's newest event time an event may be and still "
        "update its KPI window; later ones are counted as dropped-late. Keep it constant "
        "across runs.",
    )


class FeedbackDerivedConfig(Config):
    rebuild: bool = Field(
        default=True,
        description="Recompute from all stored state (the default when materialised by hand). "
        "Sensor runs set false and take only the work queued by the upstream asset.",
    )


@asset(
    group_name="feedback",
    freshness_policy=STREAMED,
    kinds={"kafka", "s3", "parquet", "postgres", "python"},
    owners=[OWNER],
    description=(
        "Every conversation turn from the `app.feedback` topic in the S3 conversation lake, as "
        "Parquet partitioned by event date (`conversations/date=YYYY-MM-DD/<topic>-<partition>-"
        "<start>-<end>.parquet`). Object names are fixed by the offset range, and ranges are "
        "claimed in the PostgreSQL offset ledger in the transaction that stores the accepted "
        "turns, the per-partition watermark and the too-late counts, so a retried or repeated "
        "range writes nothing twice. Bad records go to `dead_letters` with their reason. "
        "Materialised by hand (no ranges) it is rebuilt from the earliest retained offsets."
    ),
    metadata={
        "dagster/column_schema": table_schema(
            ("conversation_id, turn_id", "string", "turn identity"),
            ("customer_ref", "string", "customer reference as the app knows it; null = anonymous"),
            ("ts", "timestamp[us, UTC]", "event time"),
            ("question, answer, comment", "string", "free text (may hold personal data)"),
            ("model_id", "string", "model that answered"),
            ("latency_ms", "double", "answer latency"),
            ("retrieved_ids", "list<string>", "knowledge chunks used; [] = no context"),
            ("rating_up, rating_score", "bool/double", "thumb, or 1–5 score"),
            ("kafka_topic, kafka_partition, kafka_offset", "string/int/bigint", "provenance"),
        ),
        "lake_layout": f"{LAKE_PREFIX}/date=YYYY-MM-DD/<topic>-<partition>-<start>-<end>.parquet",
    },
)
def conversation_log(context: AssetExecutionContext, config: ConversationLogConfig,
                     kafka: KafkaResource, s3: S3Storage,
                     postgres: PostgresResource) -> MaterializeResult:
    policy = LatenessPolicy(timedelta(hours=config.allowed_lateness_hours))
    stats = ingest.IngestStats()
    client = lake_store.s3_client(s3)
    run_id = context.run.run_id
    if config.is_rebuild:
        ranges = rebuild_ranges(kafka, ingest.FEEDBACK_TOPIC_PATTERN)
        with postgres.transaction() as cur:
            ensure_feedback_schema(cur, postgres)
            ingest.reset_for_rebuild(cur)
            for rng in ranges:
                ingest.apply_range(cur, kafka, s3, client, rng, policy, stats, run_id)
    else:
        ranges = config.ranges
        with postgres.transaction() as cur:
            ensure_feedback_schema(cur, postgres)
        started = time.perf_counter()
        # One range per partition (what the sensor sends) is read ahead with one consumer.
        single = len({(r.topic, r.partition) for r in ranges}) == len(ranges)
        records = ingest.prefetch(kafka, ranges) if single else {}
        stats.seconds["kafka_read"] += time.perf_counter() - started
        for rng in ranges:
            with postgres.transaction() as cur:
                ingest.apply_range(cur, kafka, s3, client, rng, policy, stats, run_id,
                                   prefetched=records.get((rng.topic, rng.partition)))
    with postgres.transaction() as cur:
        summary = lake_store.lake_summary(cur)
    context.log.info(
        f"read {stats.events_read} feedback events from {len(ranges)} ranges: "
        f"{stats.turns_inserted} turns stored, {stats.arrivals['too_late']} too late, "
        f"{sum(stats.dead_letter_reasons.values())} dead letters"
    )
    return MaterializeResult(metadata={
        **stats.metadata(),
        "mode": "rebuild" if config.is_rebuild else "incremental",
        "allowed_lateness_hours": config.allowed_lateness_hours,
        "offset_ranges": MetadataValue.json(ranges_as_dicts(stats.claimed)),
        "dead_letters_by_reason": MetadataValue.json(dict(stats.dead_letter_reasons)),
        "latest_event_time": (stats.latest_event_time.isoformat()
                              if stats.latest_event_time else None),
        "lake_objects_total": summary["lake_objects_total"],
        "lake_rows_total": summary["lake_rows_total"],
        "lake_dates": summary["lake_dates"],
        "lake_uri": MetadataValue.url(f"s3://{s3.lake_bucket}/{s3.lake_prefix}{LAKE_PREFIX}/"),
    })


@asset(
    group_name="feedback",
    freshness_policy=STREAMED,
    deps=[conversation_log],
    kinds={"postgres", "python"},
    owners=[OWNER],
    description=(
        "Each accepted turn (`feedback_turns`) with the sentiment score of its comment (the "
        "`sentiment` resource: VADER offline by default, or a Bedrock text model) and a "
        "satisfaction category: the rating decides when there is one (thumbs up "
        "or >= 4 satisfied, thumbs down or <= 2 dissatisfied, 3 neutral), otherwise the comment "
        "(>= +0.05 satisfied, <= -0.05 dissatisfied), otherwise unknown. Scoring queues the "
        "turns' hourly and daily windows for the KPI tables in the same transaction. A turn "
        "whose comment could not be scored stays unscored (out of the KPIs) and is retried by a "
        "later run after a backoff (`score_attempts`, `score_error`, `score_retry_at`)."
    ),
    metadata={"dagster/column_schema": table_schema(
        ("conversation_id, turn_id", "text", "primary key"),
        ("customer_ref", "text", "customer reference; null = anonymous"),
        ("model_id", "text", "model that answered"),
        ("event_time", "timestamptz", "event time"),
        ("latency_ms", "float8", "answer latency"),
        ("has_context", "boolean", "the answer had retrieved chunks"),
        ("rating_up, rating_score", "boolean/float8", "thumb, or 1–5 score"),
        ("comment", "text", "user comment (personal data possible)"),
        ("sentiment", "float8", "comment score in [-1, 1]; null without one"),
        ("satisfaction", "text", "satisfied | neutral | dissatisfied | unknown; null = queued"),
        ("score_attempts, score_error, score_retry_at", "int/text/timestamptz",
         "failed scorings in a row, the last error, when the turn is retried"),
        ("topic, partition, offset", "text/int/bigint", "provenance"),
    )},
)
def feedback_scored(context: AssetExecutionContext, config: FeedbackDerivedConfig,
                    postgres: PostgresResource, sentiment: SentimentResource
                    ) -> MaterializeResult:
    stats = scoring.ScoreStats()
    scorer = sentiment.get_scorer()
    run_id = context.run.run_id
    with postgres.transaction() as cur:
        ensure_feedback_schema(cur, postgres)
        if config.rebuild:
            turn_store.unscore_all(cur)
    drain(postgres, lambda cur: scoring.score_batch(
        cur, scorer, stats, run_id, comment_limit=sentiment.claim_limit()))
    with postgres.transaction() as cur:
        totals = turn_store.counts(cur)
    if stats.comments_failed:
        context.log.warning(
            f"{stats.comments_failed} comments could not be scored"
            f"{' (scorer down: the rest waits for the next run)' if stats.scorer_down else ''}; "
            "they stay queued and are retried after a backoff (feedback_turns.score_error)")
    return MaterializeResult(metadata={
        **stats.metadata(), **totals, "scorer": type(scorer).__name__,
        "sentiment_model": getattr(scorer, "model_id", "vader"),
        "mode": "rebuild" if config.rebuild else "incremental",
    })


KPI_COLUMN_SCHEMA = table_schema(
    ("window_start, window_end", "timestamptz", "UTC event-time window [start, end)"),
    ("model_id", "text", "model that answered"),
    ("turns", "integer", "accepted turns"),
    ("conversations", "integer", "distinct conversations (not additive across windows)"),
    ("rated_turns, rated_share", "integer/float8", "turns with any rating, and their share"),
    ("polar_ratings, positive_ratings, thumbs_up_rate", "integer/float8",
     "thumbs or scores <= 2 / >= 4; positive / polar (null without polar ratings)"),
    ("scored_turns, mean_rating", "integer/float8", "1–5 scores and their mean (thumbs excluded)"),
    ("latency_p50_ms, latency_p95_ms", "float8", "percentile_cont of latency"),
    ("satisfied, neutral, dissatisfied, unknown", "integer", "sentiment distribution"),
    ("turns_with_context, with_context_share", "integer/float8", "answers with retrieved chunks"),
    ("dropped_late", "bigint", "deliveries beyond the allowed lateness, not in the figures"),
    ("computed_at, run_id", "timestamptz/text", "when and by which run the row was written"),
)


def _kpi_asset_body(context: AssetExecutionContext, config: FeedbackDerivedConfig,
                    postgres: PostgresResource, granularity: Granularity) -> tuple[dict, list]:
    stats = kpi_store.RecomputeStats()
    run_id = context.run.run_id
    with postgres.transaction() as cur:
        ensure_feedback_schema(cur, postgres)
        if config.rebuild:
            kpi_store.recompute_all(cur, granularity, run_id, stats)
    drain(postgres, lambda cur: kpi_store.recompute_pending(cur, granularity, run_id, stats))
    with postgres.transaction() as cur:
        summary = kpi_store.table_summary(cur, granularity)
        drops = kpi_store.total_late_drops(cur, granularity)
        rows = kpi_store.read_rows(cur, granularity)
    metadata = {
        **stats.metadata(),
        "mode": "rebuild" if config.rebuild else "incremental",
        "dagster/row_count": summary["rows"],
        "windows_total": summary["windows"],
        "turns_total": summary["turns"],
        "dropped_late_total": drops,
        "first_window": summary["first_window"].isoformat() if summary["first_window"] else None,
        "last_window": summary["last_window"].isoformat() if summary["last_window"] else None,
    }
    return metadata, rows


class KpiHourlyConfig(FeedbackDerivedConfig):
    chart_every_minutes: float = Field(
        default=5.0, description="Incremental runs re-render the trend chart only when the one in "
        "the lake is older than this; a rebuild always renders it.")


@asset(
    group_name="feedback",
    freshness_policy=STREAMED,
    deps=[feedback_scored],
    kinds={"postgres", "python", "s3"},
    owners=[OWNER],
    description=(
        "Hourly KPIs per model (`kpi_hourly`, UTC event-time windows): turns, conversations, "
        "rated share, thumbs-up rate, mean rating, latency p50/p95, sentiment distribution, "
        "share of answers with retrieved context, and deliveries dropped as too late. Windows "
        "touched by new turns are recomputed from the stored turns by one aggregate query per batch "
        "of windows (`percentile_cont` in PostgreSQL; shares and mean rating finished with the "
        "oracle's arithmetic), so the figures match the Python oracle exactly. Also renders the KPI trend chart (PNG in "
        "the lake)."
    ),
    metadata={"dagster/column_schema": KPI_COLUMN_SCHEMA},
)
def kpi_hourly(context: AssetExecutionContext, config: KpiHourlyConfig,
               postgres: PostgresResource, s3: S3Storage) -> MaterializeResult:
    metadata, rows = _kpi_asset_body(context, config, postgres, Granularity.HOUR)
    key = f"{s3.lake_prefix}{chart_key('kpi_hourly')}"
    client = lake_store.s3_client(s3)
    rendered_at = None if config.rebuild else _last_modified(client, s3.lake_bucket, key)
    stale = rendered_at is None or (
        datetime.now(timezone.utc) - rendered_at > timedelta(minutes=config.chart_every_minutes))
    if stale:
        png = render_trend_png(recent_rows(rows, timedelta(hours=72)),
                               "Feedback KPIs per hour (last 72 windows)")
        client.put_object(Bucket=s3.lake_bucket, Key=key, Body=png, ContentType="image/png")
        rendered_at = datetime.now(timezone.utc)
    return MaterializeResult(metadata={
        **metadata,
        "trend_chart": MetadataValue.url(f"s3://{s3.lake_bucket}/{key}"),
        "trend_chart_key": MetadataValue.path(key),
        "trend_chart_rendered_at": rendered_at.isoformat(),
        "trend_chart_rendered_now": stale,
    })


def _last_modified(client, bucket: str, key: str) -> datetime | None:
    try:
        return client.head_object(Bucket=bucket, Key=key)["LastModified"]
    except client.exceptions.ClientError:
        return None


@asset(
    group_name="feedback",
    freshness_policy=STREAMED,
    deps=[feedback_scored],
    kinds={"postgres", "python"},
    owners=[OWNER],
    description=(
        "Daily KPIs per model (`kpi_daily`, UTC days), same columns and rules as `kpi_hourly`."
    ),
    metadata={"dagster/column_schema": KPI_COLUMN_SCHEMA},
)
def kpi_daily(context: AssetExecutionContext, config: FeedbackDerivedConfig,
              postgres: PostgresResource) -> MaterializeResult:
    metadata, rows = _kpi_asset_body(context, config, postgres, Granularity.DAY)
    latest = rows[-1]["window_start"] if rows else None
    today = [r for r in rows if r["window_start"] == latest]
    if today:
        metadata["latest_day_turns"] = sum(r["turns"] for r in today)
        metadata["latest_day_by_model"] = MetadataValue.json({
            r["model_id"]: {"turns": r["turns"], "thumbs_up_rate": r["thumbs_up_rate"],
                            "latency_p95_ms": r["latency_p95_ms"]} for r in today})
    return MaterializeResult(metadata=metadata)


class FinetuneExportConfig(Config):
    min_score: float = Field(default=4.0, description="Lowest 1–5 score that counts as well rated.")
    near_duplicate_threshold: float = Field(
        default=0.8, description="Jaccard similarity (5-char shingles) at which a turn is a "
        "near duplicate of one kept before it.")


@asset(
    group_name="feedback",
    freshness_policy=QUARTER_HOURLY,
    deps=[conversation_log],
    kinds={"s3", "postgres", "python"},
    owners=[OWNER],
    description=(
        "Versioned fine-tuning export `finetune/<version>/train.jsonl` (chat format: system, "
        "user, assistant messages) with `manifest.json`: well-rated turns of the conversation "
        "lake (thumbs up or score >= 4), personal data masked — e-mails, phones, cards, IBANs, "
        "national ids, passports, loyalty numbers, dates of birth, addresses, customer names, and "
        "every identifier the identity graph holds for the turn's customer — erased customers "
        "and flagged turns "
        "left out, near duplicates removed. The version is the content hash, so re-exporting "
        "unchanged data rewrites the same objects."
    ),
    metadata={"dagster/column_schema": table_schema(
        ("messages", "list<{role, content}>", "system prompt, masked question, masked answer"),
    )},
    # A full export from the lake: on a clock, not on every feedback run.
    automation_condition=AutomationCondition.on_cron("*/15 * * * *"),
)
def finetune_dataset(context: AssetExecutionContext, config: FinetuneExportConfig,
                     s3: S3Storage, postgres: PostgresResource) -> MaterializeResult:
    settings = FinetuneConfig(min_score=config.min_score, near_duplicates=NearDuplicateConfig(
        threshold=config.near_duplicate_threshold))
    with postgres.transaction() as cur:
        ensure_feedback_schema(cur, postgres)
        result = finetune_export.export(cur, s3, lake_store.s3_client(s3), context.run.run_id,
                                        settings)
    manifest = result.dataset.manifest
    context.log.info(f"fine-tuning export {result.dataset.version}: "
                     f"{manifest['records_out']} of {manifest['records_in']} turns")
    return MaterializeResult(metadata={
        "version": result.dataset.version,
        "records_in": manifest["records_in"],
        "records_out": manifest["records_out"],
        "near_duplicates_removed": manifest["near_duplicates_removed"],
        "filtered": MetadataValue.json(manifest["filtered"]),
        "lake_objects_read": result.lake_objects_read,
        "names_for_masking": result.names_for_masking,
        "customer_profiles_available": result.profiles_available,
        "customers_known_for_masking": result.customers_known_for_masking,
        "dataset_uri": MetadataValue.url(f"s3://{s3.lake_bucket}/{result.dataset_key}"),
        "manifest_uri": MetadataValue.url(f"s3://{s3.lake_bucket}/{result.manifest_key}"),
        "content_sha256": manifest["content_sha256"],
    }, data_version=DataVersion(result.dataset.version))


feedback_assets = [conversation_log, feedback_scored, kpi_hourly, kpi_daily, finetune_dataset]
