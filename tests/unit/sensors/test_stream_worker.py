"""The streaming worker's life cycle, with stand-in micro-batches (no services)."""

import time
from contextlib import contextmanager

from rag_assets.platform.micro_batch import LagReport
from sensors.stream_worker import MAX_BACKOFF_S, StreamWorker, next_backoff


class StandinPostgres:
    @contextmanager
    def connection(self):
        yield object()


class Batches:
    """Applies `work` changes one per step; the first `failures` openings fail."""

    opened = 0

    def __init__(self, work: int, failures: int) -> None:
        Batches.opened += 1
        if Batches.opened <= failures:
            raise ConnectionError("postgres is down (stand-in)")
        self.left = work

    def step(self, keep_going=lambda: True) -> int:
        if self.left:
            self.left -= 1
            return 1
        return 0

    def lag(self) -> LagReport:
        return LagReport(passed=self.left == 0, metadata={"left": self.left})

    def close(self) -> None:
        pass


def wait_for(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_the_worker_applies_until_idle_and_stops_without_heartbeats():
    Batches.opened = 0
    worker = StreamWorker("t", {"postgres": StandinPostgres()},
                          lambda resources, session: Batches(work=5, failures=0), idle_stop_s=0.5)
    worker.start()
    wait_for(lambda: worker.applied == 5 and worker.idle_for() > 0)
    wait_for(lambda: not worker.is_alive(), timeout_s=3)


def test_a_failing_source_is_reported_and_retried():
    Batches.opened = 0
    worker = StreamWorker("t", {"postgres": StandinPostgres()},
                          lambda resources, session: Batches(work=3, failures=1), idle_stop_s=30)
    worker.start()
    wait_for(lambda: worker.error is not None)
    assert "postgres is down" in worker.error
    wait_for(lambda: worker.applied == 3, timeout_s=5)  # after a 1 s backoff
    assert worker.error is None
    worker.stop()
    assert not worker.is_alive()


def test_retries_double_up_to_a_cap_that_bounds_the_time_back_after_an_outage():
    pauses, backoff = [], 1.0
    for _ in range(8):  # a service down for good: the source never opens
        pause, backoff = next_backoff(backoff, served_for=None)
        pauses.append(pause)
    assert pauses == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0] and MAX_BACKOFF_S == 5.0


def test_a_worker_that_had_been_serving_meets_a_new_outage_with_a_short_pause():
    assert next_backoff(5.0, served_for=600.0) == (1.0, 2.0)
    # one that fell over again at once is still in the same outage
    assert next_backoff(4.0, served_for=0.5) == (4.0, 5.0)
