"""`rag-assets stream --source cdc|feedback|documents`: a source's streaming worker as a process.

The single-machine deployment runs each streaming worker as a thread of the code server, kept
alive by its sensor's ticks. To spread a source over cores or machines, run N of these processes
(the Kubernetes Deployments in deploy/) and set `RAG_STREAM_WORKERS=external` in the code
location, whose streaming sensors then only report what the workers applied (the lineage outbox
is shared through PostgreSQL) and the source's lag. The Kafka sources' processes form one
consumer group per source and schema, so Kafka's group protocol splits the partitions among them
and moves a dead process's partitions to the others; the offsets ledger still decides what is
applied, so a rebalance neither loses nor doubles an event.

The process runs until SIGTERM or SIGINT, which stop it between transactions.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import threading

from sensors.customers import CDC_STREAM
from sensors.feedback import FEEDBACK_STREAM
from sensors.s3_documents import DOCUMENTS_STREAM
from sensors.stream_worker import StreamWorker
from sensors.deployment import deployment_resources
from sensors.streaming import StreamingSensorSpec

# Keyed by the names `rag-assets stream --source` takes (sensors.mode.STREAM_SOURCES).
STREAMS: dict[str, StreamingSensorSpec] = {
    "cdc": CDC_STREAM, "feedback": FEEDBACK_STREAM, "documents": DOCUMENTS_STREAM}
REPORT_EVERY_S = 30.0
STOP_TIMEOUT_S = 60.0
log = logging.getLogger("rag_assets.stream")


def consumer_group(spec: StreamingSensorSpec, resources: dict) -> str | None:
    """The Kafka consumer group of a source's processes: one per deployment (topic prefix and
    schema) and stream. None for a source that is not read from Kafka."""
    kafka = resources.get("kafka")
    if kafka is None:
        return None
    return f"{kafka.topic_prefix}rag-assets.{resources['postgres'].db_schema}.{spec.name}"


def run_stream(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO lines name every partition
    spec = STREAMS[args.source]
    resources = deployment_resources(spec.resource_keys)
    worker = StreamWorker(spec.name, resources, spec.open_batches, idle_stop_s=math.inf,
                          consumer_group=consumer_group(spec, resources))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker.start()
    log.info("%s: worker started: session %s (consumer group %s)", spec.name, worker.session_id,
             worker.consumer_group)
    while not stop.wait(REPORT_EVERY_S) and worker.is_alive():
        log.info("%s: %d items applied%s", spec.name, worker.applied,
                 f"; failing and retrying: {worker.error[:200]}" if worker.error else "")
    worker.stop(STOP_TIMEOUT_S)
    log.info("%s: stopped after %d items", spec.name, worker.applied)
    return 0 if not worker.is_alive() else 1
