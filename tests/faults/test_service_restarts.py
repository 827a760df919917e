"""Services killed under the Customer 360 pipeline while it is catching up: the Kafka broker and
PostgreSQL, each with SIGKILL (their whole process group, as a crash or an OOM kill would) after
some ranges are committed and while the next ones are being read and applied. The catch-up fails
with the error of the missing service; once the service is back, a new catch-up brings the state
to the oracle replaying the whole event log: nothing lost, nothing applied twice."""

import threading
import time

import psycopg
import pytest
from kafka.errors import KafkaError

from infra.kafka import KafkaService
from infra.postgres import PostgresService
from tests.integration.customers.helpers import (
    assert_matches_oracle,
    catch_up,
    demo_messages,
    oracle_state,
    publish,
    read_log,
    stored_state,
)

pytestmark = pytest.mark.faults

RANGE = 25  # offsets per range, so the catch-up is many runs long


def _committed_offsets(postgres) -> int:
    with postgres.transaction() as cur:
        cur.execute("SELECT to_regclass('applied_offsets')")
        if cur.fetchone()[0] is None:
            return 0
        cur.execute("SELECT coalesce(sum(end_offset - start_offset), 0) FROM applied_offsets"
                    " WHERE consumer = 'source_records'")
        return cur.fetchone()[0]


def _causes(error: BaseException):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


class CatchUpInBackground(threading.Thread):
    """A catch-up in 25-offset ranges that is expected to fail when its service is killed."""

    def __init__(self, kafka, postgres) -> None:
        super().__init__(daemon=True)
        self.kafka, self.postgres, self.error = kafka, postgres, None

    def run(self) -> None:
        try:
            catch_up(self.kafka, self.postgres, max_per_partition=RANGE)
        except BaseException as error:  # kept and asserted on by the test
            self.error = error

    def failed_with(self, *kinds: type[BaseException]) -> bool:
        return any(isinstance(cause, kinds) for cause in _causes(self.error))


def _kill_mid_catch_up(service, kafka, postgres) -> CatchUpInBackground:
    """SIGKILL the service once some, but not all, offsets are committed."""
    topics = kafka.topics_matching(r"cdc\..*")
    total = sum(end - start for start, end in kafka.offset_bounds(topics).values())
    worker = CatchUpInBackground(kafka, postgres)
    worker.start()
    deadline = time.monotonic() + 120
    while _committed_offsets(postgres) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    committed = _committed_offsets(postgres)
    assert 0 < committed < total, f"{committed} of {total} offsets committed at the kill"
    assert worker.is_alive(), "the catch-up ended before the kill"
    assert service.process.kill() is not None
    worker.join(timeout=300)
    assert not worker.is_alive()
    return worker


@pytest.mark.parametrize("service, errors", [
    # The run reading from the dead broker fails with Kafka's error, or the range reader's
    # timeout when the broker vanished mid-read.
    (KafkaService, (KafkaError, TimeoutError)),
    (PostgresService, (psycopg.OperationalError,)),
], ids=["kafka", "postgres"])
def test_service_killed_during_a_catch_up(fault_stack, fault_kafka, fault_postgres, service, errors):
    settings, _ = fault_stack
    publish(fault_kafka, demo_messages(fault_kafka, people=40, changes=300))
    server = service(settings)
    try:
        worker = _kill_mid_catch_up(server, fault_kafka, fault_postgres)
    finally:
        assert server.up()
    assert worker.failed_with(*errors), repr(worker.error)

    catch_up(fault_kafka, fault_postgres, max_per_partition=RANGE)
    # Records, clusters and profiles equal the oracle's. Customer ids are compared by cluster
    # only: the identity queue keeps a record's latest state, not every state it passed
    # through, so when an interruption changes how changes are grouped, a cluster whose
    # founding record came and went inside one pending window can get another (stable) id.
    assert_matches_oracle(stored_state(fault_postgres), oracle_state(read_log(fault_kafka)),
                          ids=False)
