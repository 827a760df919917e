"""The S3 server killed under the feedback pipeline while it writes its lake (which it does
inside the range's open transaction, before the commit), and unavailable to the document sensor
(which lists S3).

SeaweedFS is SIGKILLed (its process group) at the moment the run sends its first lake object:
the events are read, the range claimed, the transaction open. The run fails with S3's
connection error and commits nothing — no ledger entry, no turn, no KPI — and a
document-listing tick while S3 is down fails with the same error without moving its cursor.
Once S3 is back, the same run config is run again and the state equals the oracle: KPIs as a
single pass over every event gives, each lake row once.
"""

import json
import random
from datetime import timedelta

import pytest
from botocore.exceptions import EndpointConnectionError
from dagster import DagsterInstance, materialize

from infra.s3 import S3Service
from rag_assets.feedback import lake_store
from resources.sentiment import SentimentResource
from sensors.s3_documents import S3_LISTING, plan_listing_tick
from tests.conftest import private_s3
from tests.integration.feedback import helpers as feedback

pytestmark = pytest.mark.faults

LATENESS = timedelta(hours=48)


@pytest.fixture
def fault_s3(fault_stack):
    _, env = fault_stack
    with private_s3(env) as resource:
        yield resource


@pytest.fixture
def kill_s3_on_first_lake_write(fault_stack, monkeypatch):
    """Arms a SIGKILL of the S3 server for the first lake object the feedback pipeline sends
    (through any client `lake_store.s3_client` hands out); returns the pids killed."""
    settings, _ = fault_stack
    server = S3Service(settings)
    kills = []
    s3_client = lake_store.s3_client

    def kill_before_lake_put(params, **_):
        if not kills and params["Key"].startswith("conversations/"):
            kills.append(server.process.kill())

    def armed_client(s3):
        client = s3_client(s3)
        client.meta.events.register("before-parameter-build.s3.PutObject", kill_before_lake_put,
                                    unique_id="kill-s3-on-first-lake-write")
        return client

    def arm():
        monkeypatch.setattr(lake_store, "s3_client", armed_client)
        return kills

    return arm


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
    return plan_listing_tick(S3_LISTING, cursor, s3, postgres, DagsterInstance.ephemeral())


def _failure_causes(result) -> set[str]:
    """Class names of the errors (and their causes) of the run's failed steps."""
    names = set()
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None:
                names.add(error.cls_name)
                error = error.cause or error.context
    return names


def test_s3_killed_during_lake_writes_then_back(fault_stack, fault_kafka, fault_s3, fault_postgres,
                                                kill_s3_on_first_lake_write):
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
    kills = kill_s3_on_first_lake_write()
    try:
        failed = materialize(feedback.STREAM_ASSETS, run_config=config, resources=resources,
                             raise_on_error=False)
        assert len(kills) == 1 and kills[0] is not None, "S3 was not killed mid-run"
        assert not failed.success
        assert "EndpointConnectionError" in _failure_causes(failed), _failure_causes(failed)
        assert _committed(fault_postgres) == before  # nothing of the failed run committed
        with pytest.raises(EndpointConnectionError):  # its cursor stays where it was
            _listing_tick(fault_s3, fault_postgres, listing)
    finally:
        s3_server.up()

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
