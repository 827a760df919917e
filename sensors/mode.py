"""Which sensors a deployment runs by default: `RAG_SENSOR_MODE`.

* `streaming` (the default): the streaming sensors apply changes inside their ticks, in
  seconds, and report them as materialisations (`sensors/streaming.py`).
* `runs`: Dagster's plain path — the range and listing sensors request one run per tick.

Both kinds are always defined, so either can be switched on in the UI; the ledger and the
registry make it safe for both to run at once (a change applied by one is skipped by the other).
"""

from __future__ import annotations

import os

MODES = ("streaming", "runs")


def sensor_mode() -> str:
    mode = os.environ.get("RAG_SENSOR_MODE", "streaming").strip().lower()
    if mode not in MODES:
        raise ValueError(f"RAG_SENSOR_MODE must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def streaming() -> bool:
    return sensor_mode() == "streaming"


WORKER_PLACEMENTS = ("in-process", "external")
STREAM_SOURCES = ("cdc", "feedback", "documents")  # `rag-assets stream --source`


def external_stream_workers() -> bool:
    """`RAG_STREAM_WORKERS=external`: the streaming workers run as processes of their own
    (`rag-assets stream --source …`, several per source), so the streaming sensors only report
    what they applied and the source's lag; `in-process` (the default) runs one worker per
    sensor inside the code server."""
    placement = os.environ.get("RAG_STREAM_WORKERS", "in-process").strip().lower()
    if placement not in WORKER_PLACEMENTS:
        raise ValueError(f"RAG_STREAM_WORKERS must be one of {', '.join(WORKER_PLACEMENTS)}, "
                         f"not {placement!r}")
    return placement == "external"
