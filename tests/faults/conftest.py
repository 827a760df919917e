"""A private Kafka + S3 + PostgreSQL stack for fault injection.

Faults (stopping a broker or a database) must not disturb the other tests or a developer's
demo, so these tests start their own services on free ports in a state directory of their own,
and stop them at the end, by pid.
"""

import pwd
import shutil
import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from infra import services
from infra.postgres import server_user
from infra.settings import InfraSettings, allow_traverse, connection_env
from tests.naming import unique_name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _free_block(size: int) -> int:
    """The first port of `size` consecutive free ports, below the ephemeral range."""
    for base in range(21000, 32000, 97):
        if all(_is_free(base + i) for i in range(size)):
            return base
    raise RuntimeError("no block of free ports")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture(scope="session")
def fault_stack() -> Iterator[tuple[InfraSettings, dict[str, str]]]:
    # Inside the main state directory, which the PostgreSQL server's user may pass through (not
    # /tmp/pytest-of-root, which it cannot traverse).
    main = InfraSettings.from_env()
    user = server_user()
    if user is not None:
        allow_traverse(main, pwd.getpwnam(user).pw_gid)
    state = main.state_dir / unique_name("faults")
    settings = replace(
        main, state_dir=state, kafka_port=_free_port(),
        kafka_controller_port=_free_port(), s3_port=_free_port(),
        s3_first_internal_port=_free_block(12), postgres_port=_free_port(),
    )
    state.mkdir(parents=True)
    # Kafka's jars are shared with the main state directory instead of fetched again.
    main_libs = main.state_dir / "kafka" / "libs"
    if main_libs.exists():
        (state / "kafka").mkdir()
        (state / "kafka" / "libs").symlink_to(main_libs)
    try:
        services.up(settings)
        yield settings, connection_env(settings)
    finally:
        services.down(settings)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def fault_kafka(fault_stack):
    from resources.kafka import kafka_from_env

    _, env = fault_stack
    return kafka_from_env(topic_prefix=unique_name("f").replace("-", "_") + ".", env=env)


@pytest.fixture
def fault_postgres(fault_stack):
    from resources.postgres import PostgresResource

    _, env = fault_stack
    return PostgresResource(host=env["PGHOST"], port=int(env["PGPORT"]), user=env["PGUSER"],
                            password=env["PGPASSWORD"], database=env["PGDATABASE"],
                            db_schema=unique_name("f").replace("-", "_"))
