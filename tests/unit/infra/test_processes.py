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
    try:
        child = _wait_for_child_in_its_own_session(pid)
    finally:  # also when the wait failed: no sleeper outlives the test
        assert process.stop(timeout=5)
    time.sleep(0.2)
    assert not _alive(pid) and not _alive(child)
    assert process.running_pid() is None and not process.pid_file.exists()


def _wait_for_child_in_its_own_session(pid: int, timeout: float = 10.0) -> int:
    """The child, once `setsid` has run (right after the fork it is still in our group)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = _children_of(pid)
        if children and os.getpgid(children[0]) != os.getpgid(pid):
            return children[0]
        time.sleep(0.05)
    raise AssertionError(f"no child of {pid} left the process group within {timeout} s")

def test_a_recycled_pid_is_not_ours(tmp_path):
    process = ManagedProcess("short", tmp_path / "short.pid", tmp_path / "short.log")
    process.start(["true"])
    time.sleep(0.3)
    assert process.running_pid() is None
    assert process.stop() is False
