"""Identity linking throughput: one linker against several linking the same input at once.

For each configuration (linkers R, batch size B) a fresh schema receives the same source records
(the demo's snapshot and changes, `tests/integration/customers/linking_workload.py`), queued
for linking, before the clock starts. Then R processes, each with its own connection, drain
`identity_linking.link_batch(limit=B)` at the same time. The clock starts once every process
has imported its code and connected, and stops when the last one finds nothing pending. A
batch of at most `MAX_CLUSTER_LOCKED_RECORDS` records locks its neighbourhood; a larger one runs
under the exclusive graph lock (the last default configuration: one linker, batches of 2,000).
Every configuration must end with the same clusters (printed digest; the bench fails if not).

Needs the local services (`rag-assets infra up`):

    .venv/bin/python bench/parallel_linking.py [--people 600] [--changes 400] \\
        [--configs 1x100 3x100 1x2000]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

READY_TIMEOUT_S = 300


def _resource(schema: str):
    from resources.postgres import PostgresResource

    return PostgresResource(host=os.environ["PGHOST"], port=int(os.environ["PGPORT"]),
                            user=os.environ["PGUSER"], password=os.environ["PGPASSWORD"],
                            database=os.environ["PGDATABASE"], db_schema=schema)


def _linker(schema: str, batch: int, ready, start, results) -> None:
    from rag_assets.customers import identity_linking
    from rag_assets.customers.identity_store import PostgresIdentityStore
    from rag_assets.platform.pg_connection import in_transaction

    stats, store = identity_linking.LinkStats(), PostgresIdentityStore()
    with _resource(schema).connection() as conn:
        ready.put(os.getpid())
        start.wait()
        while True:
            with in_transaction(conn) as cur:
                if not identity_linking.link_batch(cur, stats, limit=batch, store=store):
                    break
    results.put((stats.records_linked, stats.batches, stats.batches_exclusive))


def _load(postgres, events) -> int:
    from rag_assets.customers import cdc_apply
    from rag_assets.customers.assets import ensure_customer_schema
    from rag_assets.customers.catalogue_sync import sync_catalogue

    with postgres.transaction() as cur:
        ensure_customer_schema(cur, postgres)
        sync_catalogue(cur)
        stats = cdc_apply.ApplyStats()
        cdc_apply.apply_events(cur, events, stats)
        cur.execute("SELECT count(*) FROM identity_pending")
        return cur.fetchone()[0]


def _digest(postgres) -> tuple[str, int]:
    with postgres.transaction() as cur:
        cur.execute("SELECT customer_id, record_key FROM customer_assignments")
        groups: dict[str, list[str]] = {}
        for customer_id, key in cur.fetchall():
            groups.setdefault(customer_id, []).append(key)
    clusters = sorted(",".join(sorted(keys)) for keys in groups.values())
    return hashlib.sha256("\n".join(clusters).encode()).hexdigest()[:12], len(clusters)


def run(events, linkers: int, batch: int) -> dict:
    postgres = _resource(f"bench_link_{uuid.uuid4().hex[:8]}")
    try:
        pending = _load(postgres, events)
        spawn = multiprocessing.get_context("spawn")
        ready, results, start = spawn.Queue(), spawn.Queue(), spawn.Event()
        workers = [spawn.Process(target=_linker, args=(postgres.db_schema, batch, ready, start,
                                                       results)) for _ in range(linkers)]
        for worker in workers:
            worker.start()
        for _ in workers:
            ready.get(timeout=READY_TIMEOUT_S)
        began = time.perf_counter()
        start.set()
        totals = [results.get() for _ in workers]
        seconds = time.perf_counter() - began
        for worker in workers:
            worker.join()
        digest, customers = _digest(postgres)
        linked = sum(t[0] for t in totals)
        return {"linkers": linkers, "batch": batch, "records": pending, "seconds": seconds,
                "per_second": linked / seconds, "batches": sum(t[1] for t in totals),
                "exclusive": sum(t[2] for t in totals), "customers": customers, "digest": digest}
    finally:
        with postgres.transaction() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{postgres.db_schema}" CASCADE')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=600)
    parser.add_argument("--changes", type=int, default=400)
    parser.add_argument("--configs", nargs="+", default=["1x100", "3x100", "1x2000"],
                        help="LINKERSxBATCH")
    args = parser.parse_args()
    from infra.settings import InfraSettings, connection_env
    from tests.integration.customers.linking_workload import workload

    os.environ.update(connection_env(InfraSettings.from_env()))
    events = workload(seed=11, people=args.people, changes=args.changes)
    print(f"{len(events)} events, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print("linkers  batch  records  seconds  records/s  batches  exclusive  customers  digest")
    digests = set()
    for config in args.configs:
        linkers, batch = (int(x) for x in config.split("x"))
        r = run(events, linkers, batch)
        digests.add(r["digest"])
        print(f"{r['linkers']:>7}  {r['batch']:>5}  {r['records']:>7}  {r['seconds']:>7.1f}  "
              f"{r['per_second']:>9.0f}  {r['batches']:>7}  {r['exclusive']:>9}  "
              f"{r['customers']:>9}  {r['digest']}  (load {os.getloadavg()[0]:.1f})", flush=True)
    if len(digests) > 1:
        print("FAILED: the configurations ended with different clusters")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
