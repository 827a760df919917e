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


def prepare_dagster_home(settings: InfraSettings) -> Path:
    """$DAGSTER_HOME with the repository's dagster.yaml linked into it."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    link = home / "dagster.yaml"
    if not link.exists():
        link.symlink_to(REPO_ROOT / "dagster.yaml")
    return home


class DagsterService:
    name = "dagster"

    def __init__(self, settings: InfraSettings):
        self.settings = settings
        home = settings.service_dir("dagster")
        self.process = ManagedProcess("dagster", home / "dagster.pid", home / "dagster.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.dagster_port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def up(self, extra_env: dict[str, str] | None = None) -> bool:
        if self.process.running_pid() is not None and self.healthy():
            return False
        if port_open(self.settings.dagster_port):
            raise RuntimeError(f"port {self.settings.dagster_port} is taken by another program "
                               "(set RAG_DAGSTER_PORT to use another)")
        prepare_dagster_home(self.settings)
        dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
        # Variables the caller already exported win over the local defaults.
        env = {k: os.environ.get(k, v) for k, v in connection_env(self.settings).items()}
        env.update(extra_env or {})
        self.process.start(
            [dagster, "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1",
             "-p", str(self.settings.dagster_port)],
            env=env, cwd=REPO_ROOT,
        )
        wait_until(self.healthy, 300, "Dagster webserver", self.process)
        return True

    def down(self) -> bool:
        # `dagster dev` shuts its children down on SIGINT; SIGTERM it ignores for a while.
        return self.process.stop(timeout=30, first_signal=signal.SIGINT)
