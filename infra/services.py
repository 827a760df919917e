"""Bring the local services up and down together: Kafka, S3, PostgreSQL.

`up` is idempotent: a healthy service we started before is reused. It returns the names of the
services this call started, so a caller (the test suite) stops only those.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager

from infra.kafka import KafkaService
from infra.postgres import PostgresService
from infra.s3 import S3Service
from infra.settings import InfraSettings, connection_env, prepare_state_dir


def all_services(settings: InfraSettings) -> list:
    return [PostgresService(settings), S3Service(settings), KafkaService(settings)]


def up(settings: InfraSettings | None = None, only: set[str] | None = None) -> list[str]:
    settings = settings or InfraSettings.from_env()
    prepare_state_dir(settings)
    settings.dagster_home.mkdir(mode=0o700, exist_ok=True)
    started = []
    try:
        for service in all_services(settings):
            if only is None or service.name in only:
                if service.up():
                    started.append(service.name)
    except BaseException:
        # A service that cannot start leaves none of those this call started running.
        down(settings, only=set(started))
        raise
    return started


def down(settings: InfraSettings | None = None, only: set[str] | None = None) -> list[str]:
    settings = settings or InfraSettings.from_env()
    stopped = []
    for service in reversed(all_services(settings)):
        if (only is None or service.name in only) and service.down():
            stopped.append(service.name)
    return stopped


@contextmanager
def running(settings: InfraSettings | None = None) -> Iterator[dict[str, str]]:
    """The local services for the block (a benchmark's): those already running are reused, those
    started here are stopped at its end, by pid. Yields the connection variables, which are also
    put in `os.environ`."""
    settings = settings or InfraSettings.from_env()
    started = up(settings)
    env = connection_env(settings)
    os.environ.update(env)
    try:
        yield env
    finally:
        down(settings, only=set(started))


def status(settings: InfraSettings | None = None) -> dict[str, dict]:
    settings = settings or InfraSettings.from_env()
    return {
        service.name: {"pid": service.process.running_pid(), "healthy": service.healthy()}
        for service in all_services(settings)
    }


def export_lines(settings: InfraSettings | None = None) -> str:
    settings = settings or InfraSettings.from_env()
    return "\n".join(
        f"export {name}={shlex.quote(value)}" for name, value in connection_env(settings).items()
    )
