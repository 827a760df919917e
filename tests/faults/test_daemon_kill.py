"""`kill -9` of the Dagster daemon under a deployment that is carrying CDC through its sensors.

A `dagster dev` deployment (webserver + daemon, sensors on) runs on the private fault stack.
Half the demo CDC history is published; once the streaming worker has committed a first range,
the second half is published and, at a moment when a pipeline transaction is open in PostgreSQL
(work in flight, sampled from `pg_stat_activity`), the daemon is SIGKILLed (found as a child of
our `dagster dev` process, by pid). `dagster dev` shuts down when its daemon dies, so the deployment is started
again on the same instance, as an operator would. Run monitoring fails the runs the kill
orphaned, the sensor requests their ranges again from the ledger, and the final state must equal
the oracle replaying the whole log, with every offset in the ledger exactly once.
"""

import os
import signal
import socket
import time

import pytest

from bench.chaos import Observer
from infra.dagster import DagsterService
from infra.postgres import PostgresService
from infra.processes import children
from tests.integration.customers.helpers import (
    assert_matches_oracle,
    demo_messages,
    oracle_state,
    publish,
    read_log,
    stored_state,
)
from tests.naming import unique_name

pytestmark = pytest.mark.faults

CONVERGENCE_SECONDS = 150


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def deployment(fault_stack, fault_kafka, fault_postgres, tmp_path):
    """`dagster dev` on the fault stack, reading `fault_kafka`'s topics into `fault_postgres`."""
    settings, env = fault_stack
    name = unique_name("daemon").replace("-", "_")
    deployment_env = {**env, "RAG_TOPIC_PREFIX": fault_kafka.topic_prefix,
                      "RAG_PG_SCHEMA": fault_postgres.db_schema, "DAGSTER_PG_DB": name,
                      "LANCEDB_URI": str(tmp_path / "lancedb")}
    postgres_service = PostgresService(settings)
    postgres_service.create_database(name)
    service = DagsterService(settings, name=f"dagster-{name}", port=_free_port())
    service.up(extra_env=deployment_env)
    try:
        yield service, deployment_env
    finally:
        service.down()
        postgres_service.drop_database(name)


def _daemon_pid(service: DagsterService) -> int:
    """The `dagster._daemon run` child of our `dagster dev` process."""
    (pid,) = [pid for pid, argv in children(service.process.running_pid()).items()
              if "dagster._daemon" in argv and "run" in argv]
    return pid


def _ledger(postgres) -> list[tuple]:
    with postgres.transaction() as cur:
        cur.execute("SELECT to_regclass('applied_offsets')")
        if cur.fetchone()[0] is None:
            return []
        cur.execute("SELECT topic, partition, start_offset, end_offset FROM applied_offsets"
                    " WHERE consumer = 'source_records' ORDER BY 1, 2, 3")
        return cur.fetchall()


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(2)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s")


def _covered(ledger: list[tuple], ends: dict[tuple[str, int], int]) -> bool:
    reached = {}
    for topic, partition, _, end in ledger:
        reached[(topic, partition)] = max(reached.get((topic, partition), 0), end)
    return all(reached.get(tp, 0) >= end for tp, end in ends.items())


def _assert_each_offset_once(ledger: list[tuple]) -> None:
    previous: dict[tuple[str, int], int] = {}
    for topic, partition, start, end in ledger:
        assert start >= previous.get((topic, partition), 0), "an offset range applied twice"
        previous[(topic, partition)] = end


def test_daemon_killed_mid_stream_then_restarted(deployment, fault_kafka, fault_postgres):
    service, env = deployment
    messages = demo_messages(fault_kafka, people=30, changes=120)
    half = len(messages) // 2
    publish(fault_kafka, messages[:half])
    _wait_for(lambda: _ledger(fault_postgres), 120, "a first committed range")

    publish(fault_kafka, messages[half:])
    observer = Observer(env, fault_postgres.db_schema)
    try:
        deadline, in_flight = time.monotonic() + 30, []
        while not in_flight and time.monotonic() < deadline:
            in_flight = observer.open_transactions()
        assert in_flight, "no pipeline transaction in flight to interrupt"
        os.kill(_daemon_pid(service), signal.SIGKILL)
    finally:
        observer.close()
    _wait_for(lambda: service.process.running_pid() is None, 60, "dagster dev shutting down")
    service.down()  # leftovers of the old deployment, by pid
    service.up(extra_env=env)

    topics = fault_kafka.topics_matching(r"cdc\..*")
    ends = {(tp.topic, tp.partition): end for tp, (_, end) in fault_kafka.offset_bounds(topics).items()}
    _wait_for(lambda: _covered(_ledger(fault_postgres), ends), CONVERGENCE_SECONDS,
              "every CDC offset applied")
    expected = oracle_state(read_log(fault_kafka))
    _wait_for(lambda: stored_state(fault_postgres).profiles == expected.profiles, 60,
              "the profiles of the last run")
    assert_matches_oracle(stored_state(fault_postgres), expected)
    _assert_each_offset_once(_ledger(fault_postgres))
