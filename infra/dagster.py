"""The Dagster webserver and daemon (`dagster dev`) on the project's instance configuration."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import urllib.request
from pathlib import Path

from infra.processes import ManagedProcess, port_open, wait_until
from infra.settings import REPO_ROOT, InfraSettings, connection_env


def prepare_dagster_home(settings: InfraSettings, home: Path | None = None) -> Path:
    """$DAGSTER_HOME (by default the one of `rag-assets infra env`) with dagster.yaml linked in."""
    home = home or settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    link = home / "dagster.yaml"
    if not link.exists():
        link.symlink_to(REPO_ROOT / "dagster.yaml")
    return home


class DagsterService:
    """`dagster dev` on a port. A `name` other than the default gives a second, separate
    instance (its own pid file, log and $DAGSTER_HOME), as the end-to-end tests use."""

    def __init__(self, settings: InfraSettings, name: str = "dagster", port: int | None = None):
        self.settings = settings
        self.name = name
        self.port = port or settings.dagster_port
        self.home = settings.service_dir(name)
        self.process = ManagedProcess(name, self.home / "dagster.pid", self.home / "dagster.log")
        self.dagster_home = settings.dagster_home if name == "dagster" else self.home / "dagster_home"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def up(self, extra_env: dict[str, str] | None = None) -> bool:
        if self.process.running_pid() is not None and self.healthy():
            return False
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is taken by another program "
                               "(set RAG_DAGSTER_PORT to use another)")
        prepare_dagster_home(self.settings, self.dagster_home)
        dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
        # Variables the caller already exported win over the local defaults.
        env = {k: os.environ.get(k, v) for k, v in connection_env(self.settings).items()}
        env["DAGSTER_HOME"] = str(self.dagster_home)
        env.update(extra_env or {})
        self.process.start(
            [dagster, "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1",
             "-p", str(self.port)],
            env=env, cwd=REPO_ROOT,
        )
        wait_until(self.healthy, 300, "Dagster webserver", self.process)
        return True

    def down(self) -> bool:
        # `dagster dev` shuts its children down on SIGINT; SIGTERM it ignores for a while.
        return self.process.stop(timeout=30, first_signal=signal.SIGINT)
