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
