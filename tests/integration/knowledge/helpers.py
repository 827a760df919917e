"""Helpers of the knowledge-base integration tests: a fast stand-in embedder, S3 writes, runs."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from dagster import DagsterInstance, materialize

from rag_assets.knowledge.assets import document_chunks, documents
from rag_assets.knowledge.indexing import HashingEmbedder
from rag_assets.knowledge.streaming import DocumentMicroBatches
from rag_assets.platform.micro_batch import MicroBatchSession
from resources.embedder import EmbedderResource
from sensors.s3_documents import S3_LISTING, S3SensorSettings, plan_listing_tick

# Stand-in embedders by name: the resource is rebuilt by Dagster, the embedder must be shared.
EMBEDDERS: dict = {}


class StandinEmbedderResource(EmbedderResource):
    """The embedder resource with a test embedder behind it (fast, counts what it embeds)."""

    standin: str = "hashing"

    def _build(self):
        return EMBEDDERS[self.standin]


class FlakyEmbedder(HashingEmbedder):
    """Fails the next `fail_next` calls, and every call on a text containing `poison`."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next = 0
        self.poison: str | None = None
        self.calls = 0
        self._lock = threading.Lock()

    def embed(self, texts):
        with self._lock:
            self.calls += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                raise ConnectionError("embedding service unavailable (injected)")
            if self.poison and any(self.poison in text for text in texts):
                raise TimeoutError("embedding timed out (injected)")
        return super().embed(texts)


class KnowledgeBase:
    """The knowledge pipeline of one test: put objects, tick the sensor, run what it asks."""

    def __init__(self, s3, postgres, lancedb, kafka, embedder):
        self.s3, self.postgres, self.lancedb, self.kafka = s3, postgres, lancedb, kafka
        self.embedder_resource = embedder
        self.client = s3.get_client()
        self.prefix = s3.knowledge_prefix
        self.instance = DagsterInstance.ephemeral()
        self.cursor = None

    @property
    def embedder(self) -> FlakyEmbedder:
        return EMBEDDERS[self.embedder_resource.standin]

    @property
    def resources(self) -> dict:
        return {"s3": self.s3, "postgres": self.postgres, "lancedb": self.lancedb,
                "kafka": self.kafka, "embedder": self.embedder_resource}

    def put(self, name: str, body: bytes | str) -> str:
        data = body.encode("utf-8") if isinstance(body, str) else body
        response = self.client.put_object(Bucket=self.s3.knowledge_bucket,
                                          Key=self.prefix + name, Body=data)
        return response["ETag"].strip('"')

    def put_many(self, bodies: dict[str, str], threads: int = 8) -> None:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda item: self.put(*item), bodies.items()))

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.s3.knowledge_bucket, Key=self.prefix + name)

    def tick(self, settings: S3SensorSettings = S3_LISTING):
        result = plan_listing_tick(settings, self.cursor, self.s3, self.postgres, self.instance)
        self.cursor = result.cursor
        return result

    def run(self, run_config=None, chunks_config=None):
        run_config = run_config or {}
        if chunks_config:
            ops = dict(run_config.get("ops", {}))
            chunk_ops = dict(ops.get("document_chunks", {"config": {}}))
            chunk_ops["config"] = {**chunk_ops.get("config", {}), **chunks_config}
            ops["document_chunks"] = chunk_ops
            run_config = {"ops": ops}
        result = materialize([documents, document_chunks], resources=self.resources,
                             run_config=run_config, instance=self.instance)
        assert result.success
        return result

    def tick_and_run(self, chunks_config=None):
        """One sensor tick and the run it requested (None if it requested none)."""
        result = self.tick()
        if not result.run_requests:
            return None
        (request,) = result.run_requests
        return self.run(request.run_config, chunks_config)

    @staticmethod
    def metadata(result, asset: str) -> dict:
        materialization = result.asset_materializations_for_node(asset)[0]
        return {key: value.value for key, value in materialization.metadata.items()}


# --------------------------------------------------------------------------------------------
# Document workers in the test's process
# --------------------------------------------------------------------------------------------

WORKER_STREAM = "documents_stream"


def in_process_worker(kb, conn, name: str, **options) -> DocumentMicroBatches:
    """A document worker on `conn` whose lineage rows carry `name` as their streaming session."""
    session = MicroBatchSession(conn, WORKER_STREAM, name)
    return DocumentMicroBatches(session, kb.s3, kb.postgres, kb.lancedb, kb.embedder_resource,
                                **{"listing_interval_s": 0.0, "batch_size": 5, **options})


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def step_until(worker: DocumentMicroBatches, done, timeout_s: float, what: str) -> None:
    def stepped_and_done() -> bool:
        worker.step()
        return done()

    wait_until(stepped_and_done, timeout_s, what)
