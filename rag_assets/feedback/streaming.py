"""Feedback micro-batches for the streaming sensor: turns into the lake and the KPI tables.

Polls of `app.feedback` are gathered for `batch_interval_s` (each micro-batch writes one Parquet
object per partition and event date, so this bounds the lake's object count), applied like a
run's offset range (`ingest.apply_range`: lake objects named by offsets, ledger claim in the same
transaction), then scored and folded into the hourly and daily KPI windows they touch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import timedelta

from rag_assets.feedback import ingest, kpi_store, lake_store, scoring
from rag_assets.feedback.assets import DEFAULT_ALLOWED_LATENESS_HOURS, ensure_feedback_schema
from rag_assets.feedback.windows import Granularity, LatenessPolicy
from rag_assets.platform.kafka_ingest import ranges_as_dicts
from rag_assets.platform.kafka_stream import LedgerPositionedStream, apply_each_partition
from rag_assets.platform.micro_batch import LagReport, MicroBatchSession, always
from resources.kafka import KafkaResource
from resources.postgres import PostgresResource
from resources.s3 import S3Storage
from resources.sentiment import SentimentResource

MAX_LAG_EVENTS = int(os.environ.get("RAG_MAX_FEEDBACK_LAG_EVENTS", "50000"))


class FeedbackMicroBatches:
    def __init__(self, session: MicroBatchSession, kafka: KafkaResource, s3: S3Storage,
                 postgres: PostgresResource, sentiment: SentimentResource,
                 batch_interval_s: float = 1.0,
                 max_records: int = 20_000) -> None:
        self.session = session
        self.kafka = kafka
        self.s3 = s3
        self.client = lake_store.s3_client(s3)
        self.policy = LatenessPolicy(timedelta(hours=DEFAULT_ALLOWED_LATENESS_HOURS))
        self.scorer = sentiment.get_scorer()
        self.comment_limit = sentiment.claim_limit()
        self.batch_interval_s = batch_interval_s
        self.max_records = max_records
        self._last_batch = 0.0
        with session.transaction() as cur:
            ensure_feedback_schema(cur, postgres)
        self.source = LedgerPositionedStream(
            kafka, ingest.CONSUMER, ingest.FEEDBACK_TOPIC_PATTERN, session.transaction,
            consumer_group=session.consumer_group).open()

    def close(self) -> None:
        self.source.close()

    def step(self, keep_going: Callable[[], bool] = always) -> int:
        if time.monotonic() - self._last_batch < self.batch_interval_s:
            return 0
        polled = self.source.poll(timeout_ms=100, max_records=self.max_records)
        if not polled:
            return 0
        self._last_batch = time.monotonic()
        stats = ingest.IngestStats()
        run_id = self.session.run_id
        with self.session.transaction() as cur:
            def apply(rng, records) -> None:
                range_stats = ingest.IngestStats()
                ingest.apply_range(cur, self.kafka, self.s3, self.client, rng, self.policy,
                                   range_stats, run_id, prefetched=records)
                stats.add(range_stats)

            apply_each_partition(cur, self.source, polled, apply)
            if stats.ranges_applied:
                self.session.record(cur, "conversation_log", {
                    **stats.metadata(), "offset_ranges": ranges_as_dicts(stats.claimed)})
        self.session.drain("feedback_scored", scoring.ScoreStats,
                           lambda cur, s: scoring.score_batch(cur, self.scorer, s, run_id,
                                                              comment_limit=self.comment_limit),
                           keep_going)
        for granularity, asset_key in ((Granularity.HOUR, "kpi_hourly"),
                                       (Granularity.DAY, "kpi_daily")):
            self.session.drain(asset_key, kpi_store.RecomputeStats,
                               lambda cur, s, g=granularity: kpi_store.recompute_pending(
                                   cur, g, run_id, s), keep_going)
        return stats.events_read

    def lag(self) -> LagReport:
        return self.source.lag().report(MAX_LAG_EVENTS)
