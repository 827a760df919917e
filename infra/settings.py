"""Where the local services live and how they are reached.

Every port and the state directory can be changed through environment variables, so two
checkouts (or a test run beside a demo) can run side by side. Credentials for the local
services are generated once per state directory and kept in `<state>/secrets.env`, never in
the repository.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class InfraSettings:
    state_dir: Path
    kafka_port: int
    kafka_controller_port: int
    s3_port: int
    s3_first_internal_port: int
    postgres_port: int
    dagster_port: int

    @classmethod
    def from_env(cls) -> "InfraSettings":
        state = Path(os.environ.get("RAG_STATE_DIR", REPO_ROOT / ".state")).resolve()
        return cls(
            state_dir=state,
            kafka_port=_port("RAG_KAFKA_PORT", 19092),
            kafka_controller_port=_port("RAG_KAFKA_CONTROLLER_PORT", 19093),
            s3_port=_port("RAG_S3_PORT", 18333),
            s3_first_internal_port=_port("RAG_S3_INTERNAL_PORT_BASE", 18400),
            postgres_port=_port("RAG_PG_PORT", 15432),
            dagster_port=_port("RAG_DAGSTER_PORT", 3000),
        )

    def service_dir(self, name: str) -> Path:
        prepare_state_dir(self)
        path = self.state_dir / name
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    @property
    def lancedb_uri(self) -> str:
        return str(self.state_dir / "lancedb")

    @property
    def dagster_home(self) -> Path:
        return self.state_dir / "dagster_home"


class StateDirError(RuntimeError):
    """The state directory cannot be used (the message names it and what to do)."""


def prepare_state_dir(settings: InfraSettings) -> Path:
    """The state directory, created if missing, readable by its owner only: any permission
    for others is removed, and for the group only the traverse bit that lets the database
    server's own user reach its data directory is kept (`allow_traverse`)."""
    path = settings.state_dir
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o777
        if mode & ~0o710:
            path.chmod(mode & 0o710 | 0o700)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable by this user")
    except OSError as error:
        raise StateDirError(f"cannot use the state directory {path} (RAG_STATE_DIR): "
                            f"{error.strerror or error}; point RAG_STATE_DIR at a directory "
                            "this user can create and write") from None
    return path


def allow_traverse(settings: InfraSettings, gid: int) -> None:
    """Let the group `gid` (a server's own user) pass through the state directory to the
    directory it owns inside, without listing or reading anything else."""
    path = prepare_state_dir(settings)
    if path.stat().st_gid != gid:
        os.chown(path, -1, gid)
    path.chmod(0o710)


# The PostgreSQL superuser's password: read by infra only (creating databases and roles), never
# exported by `connection_env`, so no pipeline, worker or server logs in as the superuser.
ADMIN_PASSWORD_SECRET = "RAG_PG_ADMIN_PASSWORD"
SECRET_NAMES = ("AWS_SECRET_ACCESS_KEY", "PGPASSWORD", "RAG_ERASURE_HASH_KEY",
                "RAG_RETRIEVAL_PGPASSWORD", ADMIN_PASSWORD_SECRET,
                "KAFKA_SASL_PASSWORD", "RAG_KAFKA_ADMIN_PASSWORD")
# The local cluster's superuser (its bootstrap role); only infra logs in as it.
ADMIN_ROLE = "rag_admin"
# The local broker's client login (SCRAM credentials kept by the broker); its admin login, whose
# password RAG_KAFKA_ADMIN_PASSWORD only infra/kafka.py reads, is not exported.
KAFKA_USER = "rag"
KAFKA_SASL_MECHANISM = "SCRAM-SHA-256"
# The login role of the retrieval endpoint and the read-only look-ups: it may read what they read
# and append audit rows, nothing else (rag_assets/platform/db_roles.py).
RETRIEVAL_ROLE = "rag_retrieval"


def local_secrets(settings: InfraSettings) -> dict[str, str]:
    """The generated credentials of this state directory, created on first use."""
    path = settings.state_dir / "secrets.env"
    if not path.exists():
        prepare_state_dir(settings)
        path.touch(mode=0o600)
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    known = {name: value for name, value in pairs}
    missing = [name for name in SECRET_NAMES if name not in known]
    if missing:  # a state directory from before a secret was added gets it now
        new = {name: secrets.token_urlsafe(24) for name in missing}
        with path.open("a") as file:
            file.writelines(f"{name}={value}\n" for name, value in new.items())
        known.update(new)
    return known


def connection_env(settings: InfraSettings) -> dict[str, str]:
    """Every variable the project reads to reach the local services."""
    generated = local_secrets(settings)
    return {
        "RAG_STATE_DIR": str(settings.state_dir),
        "DAGSTER_HOME": str(settings.dagster_home),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{settings.kafka_port}",
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": KAFKA_SASL_MECHANISM,
        "KAFKA_SASL_USERNAME": KAFKA_USER,
        "KAFKA_SASL_PASSWORD": generated["KAFKA_SASL_PASSWORD"],
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{settings.s3_port}",
        "AWS_ACCESS_KEY_ID": "rag-local",
        "AWS_SECRET_ACCESS_KEY": generated["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": "us-east-1",
        "RAG_KB_BUCKET": "rag-knowledge",
        "RAG_LAKE_BUCKET": "rag-lake",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(settings.postgres_port),
        "PGUSER": "rag",
        "PGPASSWORD": generated["PGPASSWORD"],
        "PGDATABASE": "rag",
        "DAGSTER_PG_DB": "dagster",
        "RAG_RETRIEVAL_PGUSER": RETRIEVAL_ROLE,
        "RAG_RETRIEVAL_PGPASSWORD": generated["RAG_RETRIEVAL_PGPASSWORD"],
        "LANCEDB_URI": settings.lancedb_uri,
        "RAG_ERASURE_HASH_KEY": generated["RAG_ERASURE_HASH_KEY"],
    }


def use_local_services_by_default() -> None:
    """Commands that talk to services fall back to the local ones for unset variables."""
    for name, value in connection_env(InfraSettings.from_env()).items():
        os.environ.setdefault(name, value)
