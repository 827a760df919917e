"""Customer 360 micro-batches for the streaming sensor: CDC records applied as they arrive.

Each poll of the CDC partitions is applied like a run's offset range (`cdc_apply.apply_range`,
ledger claim in the same transaction), then the identity graph and the profiles take the work
it queued — so a change is in the customer's profile a moment after it reaches Kafka.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from rag_assets.customers import cdc_apply, identity_linking, profile_refresh
from rag_assets.customers.assets import ensure_customer_schema
from rag_assets.customers.identity_store import PostgresIdentityStore
from rag_assets.platform.kafka_ingest import ranges_as_dicts
from rag_assets.platform.kafka_stream import LedgerPositionedStream, apply_each_partition
from rag_assets.platform.micro_batch import LagReport, MicroBatchSession, always
from resources.kafka import KafkaResource
from resources.postgres import PostgresResource

MAX_LAG_EVENTS = int(os.environ.get("RAG_MAX_CDC_LAG_EVENTS", "50000"))
POLL_EVENTS = 2000
CATCH_UP_EVENTS = 1_000_000


class CdcMicroBatches:
    """`max_records`: the most events of one poll, applied in one transaction. While the stream
    is a poll or more behind (a backlog), up to `catch_up_events` are applied before the identity
    graph and the profiles take what they queued: each record is then relinked and each profile
    rebuilt once for all of them rather than once per poll (docs/scaling.md). Caught up, every
    poll is followed by the derived assets at once."""

    def __init__(self, session: MicroBatchSession, kafka: KafkaResource,
                 postgres: PostgresResource, max_records: int = POLL_EVENTS,
                 catch_up_events: int = CATCH_UP_EVENTS) -> None:
        self.session = session
        self.kafka = kafka
        self.max_records = max_records
        self.catch_up_events = catch_up_events
        # What the worker has read of the identity graph serves its later micro-batches.
        self.identity_store = PostgresIdentityStore()
        with session.transaction() as cur:
            ensure_customer_schema(cur, postgres)
        self.source = LedgerPositionedStream(
            kafka, cdc_apply.CONSUMER, cdc_apply.cdc_topic_pattern, session.transaction,
            consumer_group=session.consumer_group).open()

    def close(self) -> None:
        self.source.close()

    def step(self, keep_going: Callable[[], bool] = always) -> int:
        read = 0
        while read < self.catch_up_events and keep_going():
            polled = self.source.poll(timeout_ms=100, max_records=self.max_records)
            taken = self._apply(polled)
            read += taken
            # A poll can come back short inside a backlog too (the fetched data ran out): only
            # less than a poll's worth still in Kafka means caught up. (An empty poll ends the
            # step without asking Kafka: an idle worker polls several times a second.)
            if taken < self.max_records and (
                    not taken or self.source.lag().events < self.max_records):
                break
        if read:
            self.session.drain("identity_graph", identity_linking.LinkStats,
                               lambda cur, s: identity_linking.link_batch(
                                   cur, s, self.session.run_id, store=self.identity_store),
                               keep_going, batch_limit=identity_linking.BATCH_LIMIT)
            self.session.drain("customer_profiles", profile_refresh.RefreshStats,
                               profile_refresh.refresh_batch, keep_going,
                               batch_limit=profile_refresh.BATCH_LIMIT)
        return read

    def _apply(self, polled: list) -> int:
        """Apply one poll in one transaction with its ledger claims; returns the events read."""
        if not polled:
            return 0
        stats = cdc_apply.ApplyStats()
        with self.session.transaction() as cur:
            def apply(rng, records) -> None:
                range_stats = cdc_apply.ApplyStats()
                cdc_apply.apply_range(cur, self.kafka, rng, range_stats, self.session.run_id,
                                      prefetched=records)
                stats.add(range_stats)

            apply_each_partition(cur, self.source, polled, apply)
            if stats.ranges_applied:
                self.session.record(cur, "source_records", {
                    **stats.metadata(), "offset_ranges": ranges_as_dicts(stats.claimed)})
        return stats.events_read

    def lag(self) -> LagReport:
        return self.source.lag().report(MAX_LAG_EVENTS)
