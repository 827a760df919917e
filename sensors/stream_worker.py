"""The long-lived worker behind a streaming sensor: micro-batches applied continuously.

The sensor daemon starts a tick at most every 5 s, and a tick that overruns its slot waits for
the next one, so work done only inside ticks leaves gaps of seconds between them. The worker is
a thread in the process that evaluates the sensor (the code server); it polls its source and
applies whatever arrived, with the same functions and the same exactly-once ledger as the runs.
The sensor's ticks keep it alive (`heartbeat`): when ticks stop — the sensor was switched off,
or this process no longer serves the daemon — the worker stops after `idle_stop_s`.

A failure (a service down, a bad deployment) is kept in `error`, shown by the sensor's lag check,
and the worker starts over after a backoff, positioned again at the ledger's marks.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import closing

from rag_assets.platform.micro_batch import LagReport, MicroBatches, MicroBatchSession

IDLE_WAIT_S = 0.05
LAG_EVERY_S = 2.0
# A worker retries a failed service at most this far apart, so that it is back within about
# this long once the service is (a broker restart took ~19 s in the chaos bench: pauses doubling
# towards a 30 s cap could keep the worker asleep for up to 16 s after the broker was back).
MAX_BACKOFF_S = 5.0


def next_backoff(backoff: float, served_for: float | None) -> tuple[float, float]:
    """(the pause before starting over, the backoff after it) for a worker that failed after
    serving for `served_for` seconds (None: it failed before it could open its source). One
    that had been serving longer than the longest pause meets a new outage: it starts from 1 s
    again rather than from where an earlier outage left it."""
    if served_for is not None and served_for >= MAX_BACKOFF_S:
        backoff = 1.0
    return backoff, min(MAX_BACKOFF_S, backoff * 2)


class StreamWorker(threading.Thread):
    def __init__(self, name: str, resources: dict,
                 open_batches: Callable[[dict, MicroBatchSession], MicroBatches],
                 idle_stop_s: float = 30.0, consumer_group: str | None = None) -> None:
        super().__init__(name=f"stream-worker-{name}", daemon=True)
        self.stream = name
        self.resources = resources
        self.open_batches = open_batches
        self.idle_stop_s = idle_stop_s
        self.consumer_group = consumer_group
        self.session_id = f"stream-{name}-{uuid.uuid4().hex[:12]}"
        self.error: str | None = None
        self.lag: LagReport | None = None
        self.applied = 0
        self.idle_since: float | None = None
        self._heartbeat = time.monotonic()
        self._stop_requested = threading.Event()
        self._serving_since: float | None = None

    def heartbeat(self) -> None:
        self._heartbeat = time.monotonic()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop_requested.set()
        self.join(timeout)

    def _wanted(self) -> bool:
        return (not self._stop_requested.is_set()
                and time.monotonic() - self._heartbeat < self.idle_stop_s)

    def run(self) -> None:
        backoff = 1.0
        while self._wanted():
            self._serving_since = None
            try:
                self._serve()
                return
            except Exception as error:  # kept for the sensor to show; start over after a pause
                self.error = f"{type(error).__name__}: {error}"
                served_for = (None if self._serving_since is None
                              else time.monotonic() - self._serving_since)
                pause, backoff = next_backoff(backoff, served_for)
                self._stop_requested.wait(pause)

    def _serve(self) -> None:
        postgres = self.resources["postgres"]
        with postgres.connection() as conn:
            session = MicroBatchSession(conn, self.stream, self.session_id, self.consumer_group)
            with closing(self.open_batches(self.resources, session)) as batches:
                self.error = None
                self._serving_since = time.monotonic()
                lag_at = 0.0
                while self._wanted():
                    taken = batches.step(self._wanted)
                    self.applied += taken
                    now = time.monotonic()
                    if taken:
                        self.idle_since = None
                    else:
                        self.idle_since = self.idle_since or now
                        time.sleep(IDLE_WAIT_S)
                    if now - lag_at >= LAG_EVERY_S:
                        self.lag, lag_at = batches.lag(), now

    def idle_for(self) -> float:
        return 0.0 if self.idle_since is None else time.monotonic() - self.idle_since


_WORKERS: dict[str, StreamWorker] = {}
_LOCK = threading.Lock()


def _resources_key(name: str, resources: dict) -> str:
    config = {key: value.model_dump() if hasattr(value, "model_dump") else repr(value)
              for key, value in sorted(resources.items())}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    return f"{name}:{digest[:16]}"


def ensure_worker(name: str, resources: dict,
                  open_batches: Callable[[dict, MicroBatchSession], MicroBatches],
                  idle_stop_s: float = 30.0) -> StreamWorker:
    """The running worker of this sensor and configuration, started if there is none."""
    key = _resources_key(name, resources)
    with _LOCK:
        worker = _WORKERS.get(key)
        if worker is None or not worker.is_alive():
            worker = StreamWorker(name, resources, open_batches, idle_stop_s)
            _WORKERS[key] = worker
            worker.start()
        worker.heartbeat()
        return worker


def stop_workers() -> None:
    """Stop every worker of this process (tests; a worker otherwise stops without ticks)."""
    with _LOCK:
        workers = list(_WORKERS.values())
        _WORKERS.clear()
    for worker in workers:
        worker.stop()
