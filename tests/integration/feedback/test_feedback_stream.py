"""The streaming feedback sensor against real Kafka, S3 and PostgreSQL: KPI tables equal the
oracle after events (late, out of order, redelivered, bad) are applied inside ticks; each offset
lands in the lake once; the lineage names every offset range applied."""

import json
import random
from collections import Counter
from datetime import timedelta

import pytest

from rag_assets.feedback.windows import Granularity
from rag_assets.platform.lineage_outbox import OutboxPosition
from resources.sentiment import SentimentResource
from sensors.feedback import FEEDBACK_STREAM
from tests.integration.feedback.helpers import (
    T0,
    as_records,
    lake_rows,
    normalised,
    oracle,
    publish,
    stored_kpis,
    wave,
)
from tests.streaming import check_evaluations, covered, materialisations, stream_until_idle

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("streaming_workers")]

DEFAULT_LATENESS = timedelta(hours=24)


def reported_position(result) -> OutboxPosition:
    return OutboxPosition.parse(json.loads(result.cursor)["reported"])


def test_streamed_feedback_equals_the_oracle_and_is_in_the_lineage(kafka, s3, postgres):
    rng = random.Random(5)
    resources = {"kafka": kafka, "s3": s3, "postgres": postgres, "sentiment": SentimentResource()}
    first = wave(rng, T0, 30, 80, "a")
    publish(kafka, as_records(first))
    reported_1 = stream_until_idle(FEEDBACK_STREAM, resources)
    reported = materialisations(reported_1)
    assert set(reported) == {"conversation_log", "feedback_scored", "kpi_hourly", "kpi_daily"}
    assert reported["conversation_log"]["events_read"] == len(first)

    redelivered = rng.sample(first, 8)
    bad = [(b"k1", b"{not json"), (b"k2", None)]
    later = wave(rng, T0 + timedelta(hours=30), 4, 20, "b")
    publish(kafka, as_records(later + redelivered) + bad)
    second = stream_until_idle(FEEDBACK_STREAM, resources, cursor=reported_1.cursor)
    log = materialisations(second)["conversation_log"]
    assert log["dead_letters"] == len(bad)
    assert log["duplicates_skipped"] >= len(redelivered)

    expected, _, parsed = oracle(kafka, DEFAULT_LATENESS)
    stored = stored_kpis(postgres)
    for granularity in (Granularity.HOUR, Granularity.DAY):
        assert normalised(stored[granularity]) == normalised(expected[granularity])
    # Every good record's offset in the lake once (a redelivery is a record of its own);
    # every offset range in the lineage.
    positions = lake_rows(s3)
    assert len(positions) == len(set(positions)) == len(first) + len(later) + len(redelivered)
    topic = kafka.topic("app.feedback")
    ends = {tp.partition: end for tp, (_, end) in kafka.offset_bounds([topic]).items()}
    lineage = Counter()
    for result in (reported_1, second):
        for (t, partition), parts in covered(
                materialisations(result)["conversation_log"]["offset_ranges"]).items():
            lineage.update({partition: sum(e - s for s, e in parts)})
    assert dict(lineage) == {p: n for p, n in ends.items() if n}
    # The lag check is reported by the first tick, then again only when it flips (or a minute on).
    assert check_evaluations(reported_1)["feedback_lag"].passed
    assert "feedback_lag" not in check_evaluations(second)
    assert reported_position(second) > reported_position(reported_1)
