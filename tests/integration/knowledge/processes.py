"""Processes of the scale-out tests: document workers and a retrieval reader, each a Python
process of its own, given the test's resources through the environment.

    python -m tests.integration.knowledge.processes worker  # DocumentMicroBatches till stdin ends
    python -m tests.integration.knowledge.processes reader  # RetrievalService: a question a line

Both print `ready` once set up; the reader then answers each question line with a JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from rag_assets.knowledge.indexing import HashingEmbedder

SPEC_ENV = "RAG_TEST_PROCESS_SPEC"
ROOT = Path(__file__).resolve().parents[3]


class WorkerEmbedder(HashingEmbedder):
    """The stand-in embedder, `delay_s` slower per call (so workers overlap), and hanging for good
    on a text containing `hang_on` after touching `hang_marker` (so a test can kill it there)."""

    def __init__(self, delay_s: float = 0.0, hang_on: str | None = None,
                 hang_marker: str | None = None) -> None:
        super().__init__()
        self.delay_s, self.hang_on, self.hang_marker = delay_s, hang_on, hang_marker

    def embed(self, texts):
        if self.hang_on and any(self.hang_on in text for text in texts):
            Path(self.hang_marker).touch()
            threading.Event().wait()
        time.sleep(self.delay_s)
        return super().embed(texts)


def resource_fields(resource) -> dict:
    return {name: getattr(resource, name) for name in type(resource).model_fields}


def spec_of(postgres, s3, lancedb, **options) -> dict:
    return {"postgres": resource_fields(postgres), "s3": resource_fields(s3),
            "lancedb": resource_fields(lancedb), **options}


@contextmanager
def started(role: str, spec: dict, ready_timeout_s: float = 90.0):
    """The process, once it printed `ready` (see `started_together`)."""
    with started_together(role, [spec], ready_timeout_s) as (process,):
        yield process


@contextmanager
def started_together(role: str, specs: list[dict], ready_timeout_s: float = 90.0):
    """The processes, all started at once and each past `ready`; afterwards their stdin is closed
    (a worker then stops) and they are waited for, or killed after a minute."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.knowledge.processes", role], cwd=ROOT,
            env={**os.environ, SPEC_ENV: json.dumps(spec)},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        for spec in specs]
    try:
        for process in processes:
            wait_for_line(process, "ready", ready_timeout_s)
        yield processes
    finally:
        for process in processes:
            _stop(process)


def _stop(process) -> None:
    if process.poll() is None:
        process.stdin.close()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_line(process, expected: str, timeout_s: float) -> None:
    timer = threading.Timer(timeout_s, process.kill)
    timer.start()
    try:
        line = process.stdout.readline().strip()
    finally:
        timer.cancel()
    assert line == expected, f"{expected!r} expected from the process, got {line!r}"


def ask(process, question: str) -> list[tuple[str, str]]:
    """(doc_key, doc_version) of every chunk the reader process retrieves for the question."""
    process.stdin.write(json.dumps(question) + "\n")
    process.stdin.flush()
    return [tuple(hit) for hit in json.loads(process.stdout.readline())]


# --------------------------------------------------------------------------------------------
# Inside the process
# --------------------------------------------------------------------------------------------


def _resources(spec: dict):
    from resources.lancedb import LanceDBResource
    from resources.postgres import PostgresResource
    from resources.s3 import S3Storage

    return (PostgresResource(**spec["postgres"]), S3Storage(**spec["s3"]),
            LanceDBResource(**spec["lancedb"]))


def _run_worker(spec: dict) -> None:
    from rag_assets.knowledge.streaming import DocumentMicroBatches
    from rag_assets.platform.micro_batch import MicroBatchSession
    from tests.integration.knowledge.helpers import (
        EMBEDDERS,
        WORKER_STREAM,
        StandinEmbedderResource,
    )

    postgres, s3, lancedb = _resources(spec)
    EMBEDDERS["worker"] = WorkerEmbedder(**spec.get("embedder", {}))
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    with postgres.connection() as conn:
        session = MicroBatchSession(conn, WORKER_STREAM, spec["name"])
        batches = DocumentMicroBatches(session, s3, postgres, lancedb,
                                       StandinEmbedderResource(standin="worker"),
                                       **spec.get("options", {}))
        print("ready", flush=True)
        while not stop.is_set():
            if not batches.step():
                time.sleep(0.05)


def _run_reader(spec: dict) -> None:
    from rag_assets.retrieval.context import RetrievalService

    postgres, _, lancedb = _resources(spec)
    service = RetrievalService(postgres, lancedb, HashingEmbedder())
    print("ready", flush=True)
    for line in sys.stdin:
        bundle = service.context("nobody@example.invalid", json.loads(line), k=10)
        hits = [(c["provenance"]["doc_key"], c["provenance"]["doc_version"])
                for c in bundle["chunks"]]
        print(json.dumps(hits), flush=True)


if __name__ == "__main__":
    {"worker": _run_worker, "reader": _run_reader}[sys.argv[1]](json.loads(os.environ[SPEC_ENV]))
