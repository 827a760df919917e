"""Start a server in the background, remember its pid, and stop exactly that process group.

A pid file holds the pid and the process's start time; a pid whose start time no longer matches
was reused by the system and is treated as gone. Nothing is ever stopped by name.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


def as_user(user: str | None) -> dict:
    """`subprocess` arguments that run a child as `user` with that user's own group and no
    other (`user=` alone changes only the uid: the child would keep our groups)."""
    if user is None:
        return {}
    import pwd

    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


@dataclass(frozen=True)
class ManagedProcess:
    name: str
    pid_file: Path
    log_file: Path

    def running_pid(self) -> int | None:
        if not self.pid_file.exists():
            return None
        record = json.loads(self.pid_file.read_text())
        pid = record["pid"]
        if not _alive(pid) or _start_time(pid) != record.get("start_time"):
            return None  # gone, or the pid now belongs to another process
        return pid

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None,
              cwd: Path | None = None, user: str | None = None) -> int:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, cwd=cwd, **as_user(user),
                start_new_session=True,  # own process group, so stop() reaches its children
            )
        record = {"pid": proc.pid, "start_time": _start_time(proc.pid), "argv": list(argv)}
        self.pid_file.write_text(json.dumps(record))
        return proc.pid

    def stop(self, timeout: float = 20.0, first_signal: int = signal.SIGTERM) -> bool:
        """Stop the process group we started, and any descendant that left it; True if
        something was running."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        # Some servers (Dagster's code servers) start children in sessions of their own, out
        # of reach of the group signal: note them, by pid and start time, before stopping.
        descendants = [(p, _start_time(p)) for p in _descendants(pid)]
        _signal_group(pid, first_signal)
        if not _wait(lambda: not _alive(pid), timeout):
            _signal_group(pid, signal.SIGKILL)
            _wait(lambda: not _alive(pid), 5.0)
        survivors = [p for p, started in descendants if _alive(p) and _start_time(p) == started]
        for child in survivors:
            os.kill(child, signal.SIGTERM)
        if not _wait(lambda: not any(_alive(p) for p in survivors), 10.0):
            for child in survivors:
                if _alive(child):
                    os.kill(child, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> int | None:
        """SIGKILL the process group we started, as a crash would, and wait until its leader is
        gone; the pid killed, or None if nothing was running. The pid file stays, naming a dead
        process, so `running_pid` is None and the service can be started again."""
        pid = self.running_pid()
        if pid is None:
            return None
        descendants = [(p, _start_time(p)) for p in _descendants(pid)]
        _signal_group(pid, signal.SIGKILL)
        for child, started in descendants:  # those that left the group too
            if _alive(child) and _start_time(child) == started:
                os.kill(child, signal.SIGKILL)
        _wait(lambda: not _alive(pid) and not any(_alive(p) for p, _ in descendants), 10.0)
        return pid

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` in the process tree (children first found first)."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").glob("*/children"))
        except OSError:
            continue  # it exited while the tree was walked (Python 3.11's glob raises then)
        for task in tasks:
            try:
                children = [int(c) for c in task.read_text().split()]
            except OSError:
                continue
            found.extend(children)
            frontier.extend(children)
    return found


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except ProcessLookupError:
        pass


def _stat_fields(pid: int) -> list[str]:
    # The command name in /proc/<pid>/stat may hold spaces; fields after its ")" do not.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _start_time(pid: int) -> int | None:
    try:
        return int(_stat_fields(pid)[19])  # field 22 of stat(5): start time in clock ticks
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def _wait(condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               process: ManagedProcess | None = None) -> None:
    def ready_or_dead() -> bool:
        return condition() or (process is not None and process.running_pid() is None)

    if _wait(ready_or_dead, timeout, interval=0.3) and condition():
        return
    detail = f"\n--- last lines of {process.log_file} ---\n{process.log_tail()}" if process else ""
    raise TimeoutError(f"{what} not ready (exited, or not up after {timeout:.0f}s){detail}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def children(pid: int) -> dict[int, list[str]]:
    """The direct children of `pid` and their command lines (a fault test picks one to kill)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # exited meanwhile
            found[int(child)] = [part.decode(errors="replace") for part in argv if part]
    return found


def interrupt_on_termination() -> None:
    """Make SIGTERM, and SIGINT, raise KeyboardInterrupt in the main thread, so that a script's
    `finally` blocks stop the servers it started. SIGINT too because a script started in the
    background by a non-interactive shell inherits it ignored."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used by `pid`, its live descendants and the children they have reaped; the
    difference of two readings is what the tree used in between (a child that exits moves from
    the live sum to its parent's reaped times)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in (pid, *_descendants(pid)):
        try:
            fields = _stat_fields(member)
        except OSError:
            continue  # exited meanwhile: its parent's reaped times hold it
        total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return total / ticks
