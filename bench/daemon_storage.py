"""What Dagster's storage connections cost: `dagster dev` idle with its sensors running, once with
dagster-postgres's plain storage (a connection per storage call) and once with the pooled one
this project configures (rag_assets/platform/dagster_storage.py), side by side in one run.

    .venv/bin/python bench/daemon_storage.py [--seconds 90] [--warmup 45]

Prints CPU-seconds per minute of the daemon, the code location, the webserver and PostgreSQL
(all its processes) for each, and the ratio. Needs the local services (`rag-assets infra up`);
each variant gets a Dagster database of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.dagster import DagsterService  # noqa: E402
from infra.postgres import PostgresService  # noqa: E402
from infra.settings import REPO_ROOT, InfraSettings  # noqa: E402

ROLES = {"daemon": "dagster._daemon", "code location": "dagster api grpc",
         "webserver": "dagster_webserver"}


def plain_config() -> str:
    """The repository's dagster.yaml with dagster-postgres's own storage block instead."""
    text = (REPO_ROOT / "dagster.yaml").read_text()
    start, end = text.index("storage:\n"), text.index("\nrun_coordinator:")
    block = text[start:end]
    database = block[block.index("      postgres_db:"):]
    plain = "storage:\n  postgres:\n" + "\n".join(line[2:] for line in database.splitlines())
    return text[:start] + plain + "\n" + text[end:]


def cpu_seconds(processes: dict[str, list[psutil.Process]]) -> dict[str, float]:
    totals = {}
    for role, members in processes.items():
        total = 0.0
        for process in members:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        totals[role] = total
    return totals


def roles(root: int) -> dict[str, list[psutil.Process]]:
    tree = psutil.Process(root).children(recursive=True)
    found = {role: [p for p in tree if marker in " ".join(p.cmdline())]
             for role, marker in ROLES.items()}
    found["PostgreSQL"] = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
    return found


def measure(settings: InfraSettings, config: str, seconds: float, warmup: float) -> dict:
    name = f"bench_storage_{uuid.uuid4().hex[:8]}"
    postgres = PostgresService(settings)
    postgres.create_database(name)
    home = Path(tempfile.mkdtemp(prefix="dagster-home-"))
    (home / "dagster.yaml").write_text(config)
    service = DagsterService(settings, name=f"dagster-{name}", port=_free_port())
    try:
        service.up(extra_env={"DAGSTER_HOME": str(home), "DAGSTER_PG_DB": name,
                              "RAG_TOPIC_PREFIX": f"{name}.", "RAG_PG_SCHEMA": name})
        time.sleep(warmup)  # sensors started, workers idle
        processes = roles(service.process.running_pid())
        before, start = cpu_seconds(processes), time.monotonic()
        time.sleep(seconds)
        after, elapsed = cpu_seconds(processes), time.monotonic() - start
        return {role: (after[role] - before[role]) * 60 / elapsed for role in after}
    finally:
        service.down()
        postgres.drop_database(name)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--warmup", type=float, default=45)
    args = parser.parse_args()
    settings = InfraSettings.from_env()
    print(f"conditions: {os.cpu_count()} cores, load average {os.getloadavg()}, "
          f"{args.seconds:.0f} s measured after {args.warmup:.0f} s, sensors at their defaults")
    results = {"plain (dagster-postgres)": measure(settings, plain_config(), args.seconds, args.warmup),
               "pooled (this project)": measure(settings, (REPO_ROOT / "dagster.yaml").read_text(),
                                                args.seconds, args.warmup)}
    roles_seen = list(next(iter(results.values())))
    print("| storage | " + " | ".join(f"{r} CPU-s/min" for r in roles_seen) + " |")
    print("|---|" + "---|" * len(roles_seen))
    for variant, figures in results.items():
        print(f"| {variant} | " + " | ".join(f"{figures[r]:.2f}" for r in roles_seen) + " |")
    plain, pooled = results.values()
    print("pooled / plain: " + ", ".join(
        f"{r} {pooled[r] / plain[r]:.2f}x" for r in roles_seen if plain[r] > 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
