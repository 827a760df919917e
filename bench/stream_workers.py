"""N `rag-assets stream --source S` processes of one deployment, started, killed and stopped by
pid, and what the lineage outbox says each of them applied. Used by the scale-out test and
`bench/scaling.py`."""

from __future__ import annotations

import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from infra.processes import ManagedProcess
from rag_assets.platform import offset_ranges

REPO = Path(__file__).resolve().parents[1]
SESSION_LINE = re.compile(r"worker started: session (\S+)")


@dataclass(frozen=True)
class AppliedRange:
    session: str
    topic: str
    partition: int
    start: int
    end: int
    at: float  # epoch seconds of the micro-batch's commit


class StreamWorkerProcesses:
    """`count` worker processes of `source`, logs and pid files under `directory`."""

    def __init__(self, source: str, count: int, env: dict[str, str], directory: Path) -> None:
        self.source = source
        self.env = env
        self.processes = [ManagedProcess(f"{source}-worker-{i}", directory / f"{source}-{i}.pid",
                                         directory / f"{source}-{i}.log") for i in range(count)]

    def start(self) -> None:
        for process in self.processes:
            process.start([sys.executable, "-m", "rag_assets.cli", "stream", "--source",
                           self.source], env=self.env, cwd=REPO)

    def session_of(self, index: int, timeout_s: float = 60.0) -> str:
        """The streaming session id process `index` logged at start."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if session := self.logged_session(index):
                return session
            time.sleep(0.2)
        raise TimeoutError(f"worker {index} logged no session: {self.processes[index].log_tail()}")

    def logged_session(self, index: int) -> str | None:
        """The session id process `index` logged once started (its code imported, its
        connections open), or None yet. Fails if the process is gone."""
        log = self.processes[index].log_file
        found = SESSION_LINE.search(log.read_text(errors="replace")) if log.exists() else None
        if found:
            return found.group(1)
        assert self.processes[index].running_pid(), self.processes[index].log_tail()
        return None

    def kill(self, index: int) -> int | None:
        return self.processes[index].kill()

    def alive(self) -> list[int]:
        return [i for i, p in enumerate(self.processes) if p.running_pid() is not None]

    def stop(self) -> None:
        for process in self.processes:
            process.stop(timeout=60)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail(15)}" for p in self.processes)


def applied_ranges(cur, stream: str, asset_key: str = "source_records") -> list[AppliedRange]:
    """Every offset range the stream's micro-batches recorded in the lineage outbox (the outbox
    rows must not have been pruned: no sensor ticks in these runs)."""
    cur.execute("SELECT metadata, extract(epoch FROM created_at) FROM lineage_outbox"
                " WHERE stream = %s AND asset_key = %s ORDER BY id", (stream, asset_key))
    return [AppliedRange(meta["streaming_session"], r["topic"], r["partition"], r["start"],
                         r["end"], float(at))
            for meta, at in cur.fetchall() for r in meta.get("offset_ranges", [])]


def overlaps(ranges: list[AppliedRange]) -> list[tuple[AppliedRange, AppliedRange]]:
    """Pairs of ranges of one partition that share an offset: an event applied twice."""
    by_partition: dict[tuple[str, int], list[AppliedRange]] = defaultdict(list)
    for r in ranges:
        by_partition[(r.topic, r.partition)].append(r)
    found = []
    for group in by_partition.values():
        group.sort(key=lambda r: r.start)
        found += [(a, b) for a, b in zip(group, group[1:]) if b.start < a.end]
    return found


def coverage(ranges: list[AppliedRange]) -> dict[tuple[str, int], list[tuple[int, int]]]:
    """The applied offsets of each partition as coalesced [start, end) intervals."""
    by_partition: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for r in ranges:
        by_partition[(r.topic, r.partition)].append((r.start, r.end))
    return {tp: offset_ranges.coalesce(spans) for tp, spans in by_partition.items()}
