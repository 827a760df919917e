"""Bringing the local services up: found without an activated environment, and all-or-nothing."""

import os
from pathlib import Path

import pytest

from infra import services
from infra.s3 import S3Service
from infra.settings import InfraSettings


def test_the_s3_server_is_found_beside_the_python_that_runs_even_off_path(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # as `.venv/bin/python -m pytest` leaves it
    weed = Path(S3Service(InfraSettings.from_env())._argv()[0])
    assert weed.name == "weed" and os.access(weed, os.X_OK)


class _Service:
    def __init__(self, name: str, log: list, fails: bool = False) -> None:
        self.name, self.log, self.fails = name, log, fails

    def up(self) -> bool:
        if self.fails:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"up {self.name}")
        return True

    def down(self) -> bool:
        self.log.append(f"down {self.name}")
        return True


def test_a_service_that_cannot_start_leaves_none_of_those_started_running(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_STATE_DIR", str(tmp_path))
    log: list[str] = []
    fleet = [_Service("postgres", log), _Service("s3", log, fails=True), _Service("kafka", log)]
    monkeypatch.setattr(services, "all_services", lambda settings: fleet)

    with pytest.raises(RuntimeError, match="s3 cannot start"):
        services.up()

    assert log == ["up postgres", "down postgres"]
