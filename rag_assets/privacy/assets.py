"""The `customer_erasures` asset: erasure requests from the `privacy.erasure` topic.

Each event `{"customer_ref": ..., "request_id": ...}` erases one customer everywhere
(`erasure.py`). Offset ranges come from `erasure_sensor` (`sensors/privacy.py`) and are
claimed in the offsets ledger in the transaction that erases, so a redelivered range erases
nothing twice; a request id seen before is skipped too. Unusable events become dead letters
(source `privacy`). After the PostgreSQL step the conversation lake is rewritten; a rewrite that
fails is finished by the next run. Metadata holds counts only — never a reference.

`dead_letter_payload_retention` (job `dead_letter_retention`, scheduled hourly) clears the
payloads of dead letters older than `RAG_DEAD_LETTER_RETENTION_DAYS` (30); the letters stay, with
their reason and position.
"""

from collections import Counter

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
)

from rag_assets.customers.dead_letter_ties import ties_of
from rag_assets.customers.lookup import InvalidReference
from rag_assets.platform.asset_conventions import HOURLY, OWNER, table_schema
from rag_assets.platform.db import ensure_schema
from rag_assets.platform.dead_letters import (
    RETENTION_ENV,
    DeadLetter,
    expire_payloads,
    retention_days,
    store_dead_letters,
)
from rag_assets.platform.kafka_ingest import (
    OffsetRangeConfig,
    OffsetRangesConfig,
    claim_range,
    rebuild_ranges,
)
from rag_assets.privacy import request_log
from rag_assets.privacy.erasure import erase_in_postgres
from rag_assets.privacy.lake_rewrite import rewrite_lake
from rag_assets.privacy.request_log import AMBIGUOUS, ensure_erasure_schema
from rag_assets.privacy.requests import InvalidErasureRequest, parse_erasure_event
from resources.kafka import KafkaResource
from resources.postgres import PostgresResource
from resources.s3 import S3Storage

CONSUMER = "customer_erasures"
ERASURE_TOPIC_PATTERN = r"privacy\.erasure"
DEAD_LETTER_SOURCE = "privacy"
ERASURE_JOB = "customer_erasure"
RETENTION_JOB = "dead_letter_retention"


def apply_erasure_range(cur, kafka: KafkaResource, db_schema: str, rng: OffsetRangeConfig,
                        stats: Counter, run_id: str | None) -> None:
    """Erase for every event of the not-yet-applied part of one range (caller's transaction)."""
    claimed = claim_range(cur, CONSUMER, rng, run_id, kafka.read_range)
    if claimed is None:
        stats["ranges_already_applied"] += 1
        return
    letters = []
    for record in claimed.records:
        stats["events_read"] += 1
        position = f"{kafka.logical_topic(record.topic)}/{record.partition}@{record.offset}"
        try:
            request = parse_erasure_event(record.value, position)
            result = erase_in_postgres(cur, db_schema, request.customer_ref,
                                       request.request_id, "kafka", run_id)
        except (InvalidErasureRequest, InvalidReference) as error:
            letters.append(DeadLetter(DEAD_LETTER_SOURCE, f"erasure request: {error}",
                                      record.value, record.topic, record.partition,
                                      record.offset))
            continue
        if result.already_done:
            stats["requests_already_done"] += 1
        elif result.status == AMBIGUOUS:
            stats["requests_ambiguous"] += 1
        else:
            stats["requests_applied"] += 1
            stats["customers_erased"] += int(result.customer_found)
            for name, value in result.counts.items():
                stats[name] += value
    stats["dead_letters"] += store_dead_letters(cur, letters, run_id, ties_of=ties_of)
    stats["ranges_applied"] += 1


@asset(
    group_name="customers",
    kinds={"kafka", "postgres", "s3", "python"},
    owners=[OWNER],
    description=(
        "Right to be forgotten: each request on the `privacy.erasure` topic (`{\"customer_ref\", "
        "\"request_id\"}`) removes the customer from source records (later CDC events of those "
        "records are skipped), the identity graph, profiles, feedback turns, the conversation "
        "lake and future fine-tuning exports, in one PostgreSQL transaction plus a lake "
        "rewrite. `erasure_requests` keeps only keyed hashes of the identifiers. Materialised "
        "by hand it applies every retained request not applied yet and finishes pending lake "
        "rewrites."
    ),
    metadata={"dagster/column_schema": table_schema(
        ("erasure_requests.request_id", "text", "idempotency key of the request"),
        ("erasure_requests.identifier_hashes", "text[]", "HMAC-SHA256 of each erased identifier"),
        ("erasure_requests.status", "text", "lake_pending | completed | ambiguous"),
        ("erased_records.system, table_name, pk", "text", "source records never re-applied"),
    )},
)
def customer_erasures(context: AssetExecutionContext, config: OffsetRangesConfig,
                      kafka: KafkaResource, postgres: PostgresResource,
                      s3: S3Storage) -> MaterializeResult:
    stats: Counter = Counter()
    run_id = context.run.run_id
    with postgres.transaction() as cur:
        ensure_erasure_schema(cur, postgres.db_schema)
    ranges = rebuild_ranges(kafka, ERASURE_TOPIC_PATTERN) if config.is_rebuild else config.ranges
    for rng in ranges:
        with postgres.transaction() as cur:
            apply_erasure_range(cur, kafka, postgres.db_schema, rng, stats, run_id)
    lake = rewrite_lake(postgres, s3)
    context.log.info(f"{stats['requests_applied']} erasure request(s) applied, "
                     f"{lake.requests_completed} completed in the lake")
    with postgres.transaction() as cur:
        by_status = request_log.requests_by_status(cur)
    return MaterializeResult(metadata={
        **{name: int(stats[name]) for name in (
            "events_read", "requests_applied", "requests_already_done", "requests_ambiguous",
            "customers_erased", "dead_letters", "ranges_applied", "ranges_already_applied",
            "records_erased", "feedback_turns_deleted")},
        **lake.as_dict(),
        "requests_by_status": MetadataValue.json(by_status),
        "mode": "rebuild" if config.is_rebuild else "incremental",
        "offset_ranges": MetadataValue.json([
            {"topic": r.topic, "partition": r.partition, "start": r.start, "end": r.end}
            for r in ranges]),
    })


customer_erasure_job = define_asset_job(
    ERASURE_JOB, selection=AssetSelection.assets(customer_erasures),
    description="Applies new erasure requests from the `privacy.erasure` topic.")


@asset(
    group_name="customers",
    freshness_policy=HOURLY,
    kinds={"postgres", "python"},
    owners=[OWNER],
    description=(
        "Retention of dead-letter payloads, which may hold personal data: every hour, the "
        f"payloads of dead letters stored more than `{RETENTION_ENV}` days ago (default 30) are "
        "set to NULL (`payload_cleared_at` says when); the letters stay with their reason and "
        "position, so nothing is silently lost. Metadata holds counts only."
    ),
)
def dead_letter_payload_retention(context: AssetExecutionContext,
                                  postgres: PostgresResource) -> MaterializeResult:
    days = retention_days()
    with postgres.transaction() as cur:
        ensure_schema(cur, postgres.db_schema)
        cleared = expire_payloads(cur, days)
        cur.execute("SELECT count(*), count(payload) FROM dead_letters")
        letters, with_payload = cur.fetchone()
    context.log.info(f"{cleared} dead-letter payload(s) older than {days} days cleared")
    return MaterializeResult(metadata={
        "payloads_cleared": cleared, "retention_days": days,
        "dead_letters": int(letters), "payloads_kept": int(with_payload)})


dead_letter_retention_job = define_asset_job(
    RETENTION_JOB, selection=AssetSelection.assets(dead_letter_payload_retention),
    description="Clears dead-letter payloads older than the retention.")

dead_letter_retention_schedule = ScheduleDefinition(
    name="dead_letter_retention_hourly",
    job=dead_letter_retention_job,
    cron_schedule="41 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description=f"Dead-letter payloads older than `{RETENTION_ENV}` days cleared every hour.",
)
