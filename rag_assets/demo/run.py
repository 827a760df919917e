"""The main job of the README: services up, Dagster UI with sensors on, demo data flowing.

Everything this command starts it stops again on Ctrl-C (or after `duration_s`), by pid;
services that were already running are left running.
"""

from __future__ import annotations

import signal
import sys
import time

from infra import services
from infra.dagster import DagsterService
from infra.processes import ManagedProcess
from infra.settings import InfraSettings


def _producer(settings: InfraSettings) -> ManagedProcess:
    home = settings.service_dir("demo")
    return ManagedProcess("demo-data", home / "producer.pid", home / "producer.log")


def run_demo(duration_s: float | None = None, rate: float = 2.0) -> int:
    settings = InfraSettings.from_env()
    print("Starting Kafka, S3 and PostgreSQL...", flush=True)
    started = services.up(settings)
    dagster = DagsterService(settings)
    producer = _producer(settings)
    stop_requested = False

    def request_stop(signum, frame):
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    try:
        print("Starting the Dagster UI and daemon (sensors running)...", flush=True)
        dagster.up()
        producer.start([sys.executable, "-m", "rag_assets.cli", "demo-data", "--continuous",
                        "--rate", str(rate)])
        print(f"\nDagster UI: {dagster.url}   (asset lineage: {dagster.url}/asset-groups)")
        print("Demo data: an initial load (CDC snapshot of four systems, documents, feedback),")
        print(f"then {rate} changes/s; producer log: {producer.log_file}. Ctrl-C stops.\n",
              flush=True)
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while not stop_requested and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        print("Stopping what the demo started...", flush=True)
        producer.stop()
        dagster.down()
        services.down(settings, only=set(started))
    return 0
