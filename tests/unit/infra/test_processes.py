"""Stopping what we started, by pid: the process group and children that left it."""

import os
import time
from pathlib import Path

from infra.processes import ManagedProcess, _alive


def _children_of(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").glob("*/children")
            for c in task.read_text().split()]


def test_stop_reaches_a_child_that_started_its_own_session(tmp_path):
    process = ManagedProcess("sleeper", tmp_path / "sleeper.pid", tmp_path / "sleeper.log")
    # The child runs `setsid`, like Dagster's code servers do: out of the group's reach.
    pid = process.start(["bash", "-c", "setsid sleep 300 & wait"])
    deadline = time.monotonic() + 10
    while not _children_of(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    (child,) = _children_of(pid)
    assert os.getpgid(child) != os.getpgid(pid)

    assert process.stop(timeout=5)
    time.sleep(0.2)
    assert not _alive(pid) and not _alive(child)
    assert process.running_pid() is None and not process.pid_file.exists()


def test_a_recycled_pid_is_not_ours(tmp_path):
    process = ManagedProcess("short", tmp_path / "short.pid", tmp_path / "short.log")
    process.start(["true"])
    time.sleep(0.3)
    assert process.running_pid() is None
    assert process.stop() is False
