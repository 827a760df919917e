"""The S3 server unavailable for a while under the feedback pipeline (which writes its lake to
S3 before committing a range) and the document sensor (which lists S3).

While SeaweedFS is stopped (by pid), the feedback run fails with nothing committed — no ledger
entry, no turn, no KPI — and a document-listing tick fails without moving its cursor. Once S3
is back, the same run config is run again and the state equals the oracle: KPIs as a single
pass over every event gives, each lake row once.
"""

import json
import random
from datetime import timedelta

import pytest
from dagster import DagsterInstance, build_sensor_context, materialize

from infra.s3 import S3Service
from resources.sentiment import SentimentResource
from sensors.s3_documents import s3_documents_sensor
from tests.conftest import private_s3
from tests.integration.feedback import helpers as feedback

pytestmark = pytest.mark.faults

LATENESS = timedelta(hours=48)


@pytest.fixture
def fault_s3(fault_stack):
    _, env = fault_stack
    with private_s3(env) as resource:
        yield resource


def _committed(postgres) -> tuple[int, int]:
    with postgres.transaction() as cur:
        cur.execute("SELECT count(*) FROM applied_offsets WHERE consumer = 'conversation_log'")
        ranges = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM feedback_turns")
        return ranges, cur.fetchone()[0]


def _run_config(kafka, postgres, cursor=None):
    config, cursor = feedback.tick(kafka, postgres, cursor)
    config["ops"]["conversation_log"]["config"]["allowed_lateness_hours"] = LATENESS.total_seconds() / 3600
    return config, cursor


def _listing_tick(s3, postgres, cursor):
    context = build_sensor_context(cursor=cursor, instance=DagsterInstance.ephemeral(),
                                   resources={"s3": s3, "postgres": postgres})
    return s3_documents_sensor(context)


def test_s3_down_during_lake_writes_then_back(fault_stack, fault_kafka, fault_s3, fault_postgres):
    settings, _ = fault_stack
    resources = {"kafka": fault_kafka, "s3": fault_s3, "postgres": fault_postgres,
                 "sentiment": SentimentResource()}
    rng = random.Random(7)
    first = feedback.wave(rng, feedback.T0, 12, 40, "a")
    second = feedback.wave(rng, feedback.T0 + timedelta(hours=12), 12, 40, "b")
    feedback.publish(fault_kafka, feedback.as_records(first))
    config, cursor = _run_config(fault_kafka, fault_postgres)
    feedback.run_stream(fault_kafka, fault_s3, fault_postgres, config)
    listing = _listing_tick(fault_s3, fault_postgres, None).cursor
    before = _committed(fault_postgres)

    feedback.publish(fault_kafka, feedback.as_records(second))
    config, _ = _run_config(fault_kafka, fault_postgres, cursor)
    s3_server = S3Service(settings)
    assert s3_server.down()
    try:
        failed = materialize(feedback.STREAM_ASSETS, run_config=config, resources=resources,
                             raise_on_error=False)
        assert not failed.success
        assert _committed(fault_postgres) == before  # nothing of the failed run committed
        with pytest.raises(Exception):  # the listing fails; its cursor stays where it was
            _listing_tick(fault_s3, fault_postgres, listing)
    finally:
        assert s3_server.up()

    feedback.run_stream(fault_kafka, fault_s3, fault_postgres, config)
    assert feedback.run_stream(fault_kafka, fault_s3, fault_postgres, config)[
        "conversation_log"]["events_read"].value == 0
    expected, outcome, _ = feedback.oracle(fault_kafka, LATENESS)
    stored = feedback.stored_kpis(fault_postgres)
    for granularity, rows in expected.items():
        assert feedback.normalised(stored[granularity]) == feedback.normalised(rows)
    lake = feedback.lake_rows(fault_s3)
    assert len(lake) == len(set(lake)) == len(outcome.accepted) == len(first) + len(second)
    assert _committed(fault_postgres)[1] == len({(e["conversation_id"], e["turn_id"])
                                                 for e in first + second})
    assert json.loads(_listing_tick(fault_s3, fault_postgres, listing).cursor)["generation"] >= 1
