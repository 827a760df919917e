"""Sensors of disjoint partition sets split `app.feedback` between runs that execute at the
same time, and together reach the oracle's KPI tables (docs/scaling.md)."""

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest
from dagster import DagsterInstance

from rag_assets.feedback.windows import Granularity
from sensors.feedback import FEEDBACK_RANGES
from sensors.kafka_ranges import plan_tick
from tests.integration.feedback.helpers import (
    T0,
    as_records,
    normalised,
    oracle,
    publish,
    run_stream,
    stored_kpis,
    wave,
)

pytestmark = pytest.mark.integration

PARTITION_SETS = (frozenset({0, 2}), frozenset({1}))


def test_partition_set_sensors_run_in_parallel_and_reach_the_oracle(kafka, s3, postgres):
    events = wave(random.Random(5), T0, 12, 150, "ps")
    publish(kafka, as_records(events), partitions=3)
    configs = []
    for number, partitions in enumerate(PARTITION_SETS):
        spec = replace(FEEDBACK_RANGES, name=f"feedback_sensor_{number}", partitions=partitions)
        (request,) = plan_tick(spec, None, kafka, postgres, DagsterInstance.ephemeral()).run_requests
        ranges = request.run_config["ops"]["conversation_log"]["config"]["ranges"]
        assert {r["partition"] for r in ranges} == partitions
        configs.append(request.run_config)

    with ThreadPoolExecutor(len(configs)) as pool:
        metadata = list(pool.map(lambda config: run_stream(kafka, s3, postgres, config), configs))

    assert sum(m["conversation_log"]["events_read"].value for m in metadata) == len(events)
    expected, _, _ = oracle(kafka, timedelta(hours=24))
    stored = stored_kpis(postgres)
    for granularity in (Granularity.HOUR, Granularity.DAY):
        assert normalised(stored[granularity]) == normalised(expected[granularity])
