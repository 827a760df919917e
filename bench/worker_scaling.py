"""`bench/scaling.py --stream-workers …`: N scale-out CDC worker processes catching up with one
backlog (see that script's docstring for the procedure and the figures)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from bench.chaos_load import ChaosLoad, compare_customers, read_customers
from bench.stream_workers import StreamWorkerProcesses, applied_ranges, coverage, overlaps
from infra import services
from infra.processes import tree_cpu_seconds, wait_until
from infra.settings import InfraSettings
from resources.kafka import KafkaResource, kafka_from_env
from resources.postgres import PostgresResource

STREAM = "cdc_stream"
CATCH_UP_TIMEOUT_S = 900
WARM_UP_S = 20.0


@dataclass(frozen=True)
class WorkerRun:
    workers: int
    events: int  # applied after every worker had applied a range (the clock's start)
    seconds: float
    cpu: dict[str, float]  # CPU-seconds by part: "workers" and each service
    digest: str  # of the end state: records and the grouping of records into customers
    verdict_ok: bool
    doubled_offsets: int
    work: dict[str, int]  # the whole catch-up's derived work (lineage outbox), clock or not
    # The whole backlog, clock or not: CPU-seconds by part from each worker's start-up on
    # (services from before the workers started), and the workers' start-up CPU-seconds.
    whole_events: int
    whole_cpu: dict[str, float]
    start_up_cpu: float
    gap_s: float | None = None  # the rebalance gap, for a run with a kill


def measure_stream_workers(env: dict, counts: list[int], events: int, partitions: int,
                           seed: int, rate: float, duration_s: float) -> int:
    consistent = measure_catch_up(env, counts, events, partitions, seed) if events else True
    if rate > 0:
        consistent &= measure_sustained(env, counts, partitions, seed, rate, duration_s)
    return 0 if consistent else 1


def measure_catch_up(env: dict, counts: list[int], events: int, partitions: int,
                     seed: int) -> bool:
    tag = uuid.uuid4().hex[:8]
    kafka = kafka_from_env(topic_prefix=f"scale_{tag}.", env=env)
    load = ChaosLoad(kafka, None, "", seed=seed, run=tag, feedback_rate=0.0, documents=0,
                     partitions=partitions)
    load.start_topics()
    published = time.perf_counter()
    load.send_cdc_backlog(events)
    ends = {(kafka.topic(t), p): sends[-1][0] + 1 for (t, p), sends in load.send_times().items()}
    total = sum(ends.values())
    print(f"conditions: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; local Kafka, SeaweedFS and PostgreSQL on the same cores; "
          f"{total:,} CDC changes over {len(ends)} partitions ({partitions} per topic), published "
          f"in {time.perf_counter() - published:.1f} s before the clocks; load average "
          f"{os.getloadavg()}", flush=True)
    print("| workers | events timed | seconds | events/s | vs 1 worker | CPU-s / 1,000 events: "
          "workers | PostgreSQL | Kafka | all | vs 1 worker | whole backlog: CPU-s / 1,000 "
          "events | vs 1 worker | start-up CPU-s per worker | records linked | profiles built | "
          "rebalance gap | end state |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    baseline: WorkerRun | None = None
    consistent = True
    try:
        for count in counts:
            run = catch_up(env, kafka, load, ends, count, kill=False)
            if count >= 2:
                run = _with_gap(run, catch_up(env, kafka, load, ends, count, kill=True))
            baseline = baseline or run
            consistent &= run.verdict_ok and run.doubled_offsets == 0 and (
                run.digest == baseline.digest)
            print_row(run, baseline)
    finally:
        kafka.delete_prefixed_topics()
    print(f"every end state equal to the generator's ground truth and to 1 worker's, no offset "
          f"applied twice: {'yes' if consistent else 'NO'}")
    return consistent


def measure_sustained(env: dict, counts: list[int], partitions: int, seed: int, rate: float,
                      duration_s: float) -> bool:
    """The same source at a steady `rate` below what the machine can apply, so that the cores
    are not oversubscribed: CPU-seconds per 1,000 events are the cost of the workers' design."""
    print(f"\nsteady load: {rate:,.0f} CDC changes/s; after a {WARM_UP_S:.0f} s warm-up (the "
          f"group forms), CPU and applied events counted for {duration_s:.0f} s; load average "
          f"{os.getloadavg()}", flush=True)
    print("| workers | events applied | CPU-s / 1,000 events: workers | PostgreSQL | Kafka | all "
          "| vs 1 worker | end state |")
    print("|---|---|---|---|---|---|---|---|")
    consistent, base_every = True, None
    for count in counts:
        events, cpu, ok = steady_run(env, count, partitions, seed, rate, duration_s)
        per_k = {k: v / events * 1000 for k, v in cpu.items()}
        every = sum(per_k.values())
        base_every = base_every or every
        consistent &= ok
        print(f"| {count} | {events:,} | {per_k['workers']:.3f} | {per_k.get('PostgreSQL', 0):.3f}"
              f" | {per_k.get('Kafka', 0):.3f} | {every:.3f} | {every / base_every:.2f}x | "
              f"{'equal to the ground truth' if ok else 'DIFFERS'} |", flush=True)
    return consistent


def steady_run(env: dict, count: int, partitions: int, seed: int, rate: float,
               duration_s: float) -> tuple[int, dict, bool]:
    tag = uuid.uuid4().hex[:8]
    kafka = kafka_from_env(topic_prefix=f"steady_{tag}.", env=env)
    load = ChaosLoad(kafka, None, "", seed=seed, run=tag, cdc_rate=rate, feedback_rate=0.0,
                     documents=0, partitions=partitions)
    load.start_topics()
    postgres = _fresh_schema(env)
    worker_env = {**env, "RAG_TOPIC_PREFIX": kafka.topic_prefix,
                  "RAG_PG_SCHEMA": postgres.db_schema}
    try:
        with tempfile.TemporaryDirectory(prefix="stream-workers-") as directory:
            workers = StreamWorkerProcesses("cdc", count, worker_env, Path(directory))
            workers.start()
            try:
                for i in range(count):
                    workers.session_of(i, timeout_s=120)
                parts = {**{f"worker {i}": p.running_pid()
                            for i, p in enumerate(workers.processes)}, **service_pids()}
                load.start()
                time.sleep(WARM_UP_S)
                cpu_before, t0 = {n: tree_cpu_seconds(p) for n, p in parts.items()}, time.time()
                time.sleep(duration_s)
                cpu, t1 = cpu_by_part(parts, cpu_before), time.time()
                load.finish()
                ends = {(kafka.topic(t), p): s[-1][0] + 1
                        for (t, p), s in load.send_times().items() if s}
                wait_until(lambda: _caught_up(postgres, ends), CATCH_UP_TIMEOUT_S,
                           f"{count} workers caught up with the steady load")
            finally:
                load.finish()
                workers.stop()
        events = sum(r.end - r.start for r in _applied(postgres) if t0 <= r.at < t1)
        with postgres.transaction() as cur:
            doubled = overlaps(applied_ranges(cur, STREAM))
        verdict = compare_customers(load.truth, read_customers(postgres))
        if not verdict.ok:
            print(f"  {count} workers: lost {verdict.lost[:5]}, doubled {verdict.doubled[:5]}",
                  flush=True)
        if doubled:  # the ledger applied them once; the lineage reported them twice
            print(f"  {count} workers: {len(doubled)} pair(s) of micro-batches report the same "
                  f"offsets in the lineage, e.g. {doubled[0]}", flush=True)
        return events, cpu, verdict.ok
    finally:
        _drop(postgres)
        kafka.delete_prefixed_topics()


def _with_gap(run: WorkerRun, killed: WorkerRun) -> WorkerRun:
    ok = killed.verdict_ok and killed.doubled_offsets == 0 and killed.digest == run.digest
    return replace(run, digest=run.digest if ok else "differs", verdict_ok=run.verdict_ok and ok,
                   gap_s=killed.gap_s)


def catch_up(env: dict, kafka: KafkaResource, load: ChaosLoad, ends: dict, count: int,
             kill: bool) -> WorkerRun:
    """N workers on a fresh schema apply the whole backlog. The clock (and the CPU reading)
    starts once every worker has applied a range — the group has formed; what the first members
    applied before is left out. That window holds all of the linking and profile work (done
    after the backlog is applied) but not all of the applying, and a group that forms later
    leaves more applying out: so the whole backlog is also counted, each worker's CPU from the
    moment it has started (its start-up, the same for any N, reported apart). With `kill`, the
    worker with the most events left in its partitions is SIGKILLed a third of the way through
    what was left then."""
    postgres = _fresh_schema(env)
    worker_env = {**env, "RAG_TOPIC_PREFIX": kafka.topic_prefix,
                  "RAG_PG_SCHEMA": postgres.db_schema}
    with tempfile.TemporaryDirectory(prefix="stream-workers-") as directory:
        workers = StreamWorkerProcesses("cdc", count, worker_env, Path(directory))
        services_at_start = {name: tree_cpu_seconds(pid) for name, pid in service_pids().items()}
        workers.start()
        try:
            sessions, start_up = _started(workers, count)
            pids = {f"worker {i}": p.running_pid() for i, p in enumerate(workers.processes)}
            parts = {**pids, **service_pids()}
            wait_until(lambda: set(sessions) <= {r.session for r in _applied(postgres)},
                       CATCH_UP_TIMEOUT_S, "every worker applied a range")
            cpu_before = {name: tree_cpu_seconds(pid) for name, pid in parts.items()}
            started = time.perf_counter()
            done_before = sum(r.end - r.start for r in _applied(postgres))
            left = sum(ends.values()) - done_before
            if left < sum(ends.values()) / 4:
                raise SystemExit(f"{count} workers: {done_before:,} of the backlog's events were "
                                 "applied before every worker had joined; raise --cdc-events")
            gap = None
            if kill:
                gap = _kill_and_time_rebalance(postgres, workers, sessions, ends,
                                               done_before + left / 3)
            wait_until(lambda: _caught_up(postgres, ends), CATCH_UP_TIMEOUT_S,
                       f"{count} workers caught up with the backlog")
            seconds = time.perf_counter() - started
            cpu = cpu_by_part(parts, cpu_before)
            whole = cpu_by_part(parts, {**start_up, **services_at_start})
        finally:
            workers.stop()
        return _judge(postgres, load, count, left, seconds, cpu, gap, sum(ends.values()), whole,
                      sum(start_up.values()) / count)


def _started(workers: StreamWorkerProcesses, count: int,
             timeout_s: float = 120.0) -> tuple[list[str], dict[str, float]]:
    """Each worker's session and its CPU-seconds when it logged it (its start-up: imports and
    connections), read as soon as each appears, before it has applied much."""
    sessions: dict[int, str] = {}
    start_up: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(sessions) < count:
        for i in set(range(count)) - set(sessions):
            if session := workers.logged_session(i):
                start_up[f"worker {i}"] = tree_cpu_seconds(workers.processes[i].running_pid())
                sessions[i] = session
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count - len(sessions)} workers logged no session")
        time.sleep(0.05)
    return [sessions[i] for i in range(count)], start_up


def _fresh_schema(env: dict) -> PostgresResource:
    return PostgresResource(host=env["PGHOST"], port=int(env["PGPORT"]), user=env["PGUSER"],
                            password=env["PGPASSWORD"], database=env["PGDATABASE"],
                            db_schema=f"scale_{uuid.uuid4().hex[:8]}")


def _drop(postgres: PostgresResource) -> None:
    with postgres.transaction() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{postgres.db_schema}" CASCADE')


def _applied(postgres: PostgresResource) -> list:
    with postgres.transaction() as cur:
        cur.execute("SELECT to_regclass('lineage_outbox') IS NOT NULL")
        return applied_ranges(cur, STREAM) if cur.fetchone()[0] else []


def _judge(postgres: PostgresResource, load: ChaosLoad, count: int, events: int,
           seconds: float, cpu: dict, gap: float | None, whole_events: int, whole_cpu: dict,
           start_up_cpu: float) -> WorkerRun:
    try:
        actual = read_customers(postgres)
        with postgres.transaction() as cur:
            doubled = len(overlaps(applied_ranges(cur, STREAM)))
            work = derived_work(cur)
        return WorkerRun(count, events, seconds, cpu, end_state_digest(actual),
                         compare_customers(load.truth, actual).ok, doubled, work,
                         whole_events, whole_cpu, start_up_cpu, gap)
    finally:
        _drop(postgres)


def derived_work(cur) -> dict[str, int]:
    """Records linked and profiles built (written or found unchanged), summed over the
    micro-batches the lineage outbox reported."""
    cur.execute("SELECT coalesce(sum((metadata->>'records_linked')::int), 0),"
                " coalesce(sum((metadata->>'profiles_written')::int"
                "              + (metadata->>'profiles_unchanged')::int), 0)"
                " FROM lineage_outbox WHERE stream = %s", (STREAM,))
    linked, built = cur.fetchone()
    return {"records linked": linked, "profiles built": built}


def _kill_and_time_rebalance(postgres, workers: StreamWorkerProcesses, sessions: list[str],
                             ends: dict, kill_at: float) -> float | None:
    """Once `kill_at` events are applied, SIGKILL the worker with the most events left in the
    partitions it holds (a fixed victim may have finished its partitions already); seconds until
    every such partition is applied again by another worker (the worst one); None if no worker
    held a partition with events left."""
    wait_until(lambda: sum(r.end - r.start for r in _applied(postgres)) >= kill_at,
               CATCH_UP_TIMEOUT_S, "a third of the backlog applied")
    before = _applied(postgres)
    reached = {tp: spans[-1][1] for tp, spans in coverage(before).items()}
    left = {i: {tp: ends[tp] - reached.get(tp, 0) for tp in
                {(r.topic, r.partition) for r in before if r.session == session}
                if reached.get(tp, 0) < ends[tp]}
            for i, session in enumerate(sessions)}
    victim = max(left, key=lambda i: sum(left[i].values()))
    unfinished = set(left[victim])
    print(f"  killing worker {victim}: {len(unfinished)} partition(s) with "
          f"{sum(left[victim].values()):,} events left", flush=True)
    killed_at = time.time()
    workers.kill(victim)

    def resumed() -> dict:
        firsts: dict = {}
        for r in _applied(postgres):
            if r.session != sessions[victim] and r.at > killed_at:
                firsts.setdefault((r.topic, r.partition), r.at)
        return firsts

    wait_until(lambda: unfinished <= set(resumed()), CATCH_UP_TIMEOUT_S,
               "the killed worker's partitions applied again")
    firsts = resumed()
    return max((firsts[tp] - killed_at for tp in unfinished), default=None)


def _caught_up(postgres, ends: dict) -> bool:
    with postgres.transaction() as cur:
        reached = coverage(applied_ranges(cur, STREAM))
        cur.execute("SELECT to_regclass('profile_pending') IS NOT NULL")
        if not cur.fetchone()[0]:
            return False
        cur.execute("SELECT (SELECT count(*) FROM identity_pending)"
                    " + (SELECT count(*) FROM profile_pending)")
        queued = cur.fetchone()[0]
    return queued == 0 and all(reached.get(tp, [(0, 0)])[-1][1] >= end
                               for tp, end in ends.items())


def service_pids() -> dict[str, int]:
    found = services.status(InfraSettings.from_env())
    return {{"postgres": "PostgreSQL", "kafka": "Kafka", "s3": "S3"}[name]: info["pid"]
            for name, info in found.items() if info["pid"]}


def cpu_by_part(parts: dict[str, int], before: dict[str, float]) -> dict[str, float]:
    used = {name: tree_cpu_seconds(pid) - before[name] for name, pid in parts.items()}
    workers = sum(v for k, v in used.items() if k.startswith("worker "))
    return {"workers": workers, **{k: v for k, v in used.items() if not k.startswith("worker ")}}


def end_state_digest(actual: dict) -> str:
    """Records and the grouping of record keys into customers (customer ids aside)."""
    groups: dict[str, list[str]] = {}
    for record, customer in actual["assignments"].items():
        groups.setdefault(customer, []).append(record)
    state = {"records": actual["records"],
             "customers": sorted(sorted(records) for records in groups.values()),
             "profiles": len(actual["profiles"])}
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:12]


def print_row(run: WorkerRun, baseline: WorkerRun) -> None:
    per_k = {k: v / run.events * 1000 for k, v in run.cpu.items()}
    every = sum(per_k.values())
    base_every = sum(baseline.cpu.values()) / baseline.events * 1000
    gap = f"{run.gap_s:.1f} s" if run.gap_s is not None else "—"
    state = "equal" if run.verdict_ok and run.digest == baseline.digest else "DIFFERS"
    rate, base_rate = run.events / run.seconds, baseline.events / baseline.seconds
    whole, base_whole = (sum(r.whole_cpu.values()) / r.whole_events * 1000 for r in (run, baseline))
    print(f"| {run.workers} | {run.events:,} | {run.seconds:.1f} | **{rate:,.0f}** | "
          f"{rate / base_rate:.2f}x | {per_k['workers']:.2f} | "
          f"{per_k.get('PostgreSQL', 0):.2f} | {per_k.get('Kafka', 0):.2f} | {every:.2f} | "
          f"{every / base_every:.2f}x | {whole:.2f} | **{whole / base_whole:.2f}x** | "
          f"{run.start_up_cpu:.1f} | {run.work['records linked']:,} | "
          f"{run.work['profiles built']:,} | {gap} | {state} ({run.digest}) |", flush=True)
