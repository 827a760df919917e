"""Partition scaling: feedback events/s against Kafka partitions and runs executing in parallel.

For each partition count P, a fresh `app.feedback` topic with P partitions receives the same
backlog of demo feedback events (published before the clock starts). Then R runs execute at
the same time, each in a process of its own, as R deployments of the code location would: run
i is driven by a partition-set sensor — `feedback_sensor`'s spec with `partitions` = the
partitions p with p % R == i — and materialises in process every run that sensor requests
(`conversation_log` → `feedback_scored` → `kpi_hourly` + `kpi_daily`) until its partitions are
caught up. The clock starts once every process has imported its code and stops when the last
one has caught up. Each configuration starts from an empty schema, topic and bucket.

All runs claim their ranges in the one offset ledger (a per-partition advisory lock), take
turns to score with `FOR UPDATE SKIP LOCKED` and recompute KPI windows under a lock per
granularity, so the KPI tables must come out identical for every R of one P: the bench prints
a digest of them and fails if they differ.

    .venv/bin/python bench/scaling.py [--events 60000] [--partitions 1 2 4 8] [--runs 1 2 3]

With `--stream-workers 1 2 3` it measures the scale-out streaming workers instead: one backlog of
CDC changes from the chaos load generator (its ground truth kept) is published once to topics
of `--worker-partitions` partitions; then, for each worker count N, N `rag-assets stream
--source cdc` processes on a fresh schema (and consumer group) catch up with it. Printed per N:
events/s from the moment every process has imported its code until every partition is applied
and the identity and profile queues are drained; CPU-seconds per 1,000 events of the workers
and of each service in that window; the same over the whole backlog, from each worker's
start-up on (its start-up CPU printed apart), which does not depend on when the group formed;
and, for N >= 2, a second catch-up on another fresh schema in which one
worker is SIGKILLed a third of the way in — the rebalance gap is the time from the kill until
each partition the victim held is applied again by another worker (the worst partition). Every
end state is compared with the generator's ground truth and with the single-worker one.

    .venv/bin/python bench/scaling.py --stream-workers 1 2 3 [--cdc-events 20000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import queue
import sys
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra import services  # noqa: E402
from infra.processes import interrupt_on_termination  # noqa: E402

from feedback_backlog import (  # noqa: E402  (bench/ is the script's own directory)
    FeedbackBench,
    RunTotals,
    demo_events,
    feedback_bench,
    output_line,
    output_summary,
    publish,
)
from sensor_runs import feedback_runs  # noqa: E402

READY_TIMEOUT_S = 300


@dataclass(frozen=True)
class Measurement:
    partitions: int
    parallel_runs: int
    runs: int  # Dagster runs materialised, summed over the processes
    events: int
    seconds: float
    cpu_busy: float  # share of the machine's cores busy during the catch-up (every process)
    load: tuple[float, float]  # 1-minute load average before and after
    output: dict

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


def partition_sets(partitions: int, parallel_runs: int) -> list[frozenset[int]]:
    return [frozenset(p for p in range(partitions) if p % parallel_runs == i)
            for i in range(parallel_runs)]


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of every core since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def catch_up(env: dict, tag: str, partitions: frozenset[int], max_per_partition: int,
             start_together, results) -> None:
    """One parallel run: a partition-set sensor and the runs it requests, until caught up."""
    from dataclasses import replace

    os.environ.update(env)
    import matplotlib.figure  # noqa: F401  (the KPI chart's import, paid before the clock)

    from sensors.feedback import FEEDBACK_RANGES

    spec = replace(FEEDBACK_RANGES, name=f"feedback_sensor_{min(partitions)}",
                   partitions=partitions, max_per_partition=max_per_partition)
    resources = FeedbackBench(env, tag).resources()
    totals = RunTotals()
    start_together.wait(READY_TIMEOUT_S)
    try:
        for run in feedback_runs(spec, resources):
            totals.add(run)
    except Exception:  # reported to the parent, which stops the benchmark with it
        results.put(traceback.format_exc())
        return
    results.put((totals.runs, totals.events))


def collect(workers: list, results) -> list[tuple[int, int]]:
    """Every worker's (runs, events); raises as soon as one of them died without reporting."""
    done: list[tuple[int, int]] = []
    while len(done) < len(workers):
        try:
            result = results.get(timeout=1)
        except queue.Empty:
            if any(w.exitcode not in (None, 0) for w in workers):
                raise RuntimeError("a parallel run died (its traceback is above)") from None
            continue
        if isinstance(result, str):
            raise RuntimeError(f"a parallel run failed:\n{result}")
        done.append(result)
    return done


def measure(env: dict, events: list[dict], partitions: int, parallel_runs: int,
            max_per_partition: int) -> Measurement:
    spawn = multiprocessing.get_context("spawn")
    with feedback_bench(env, uuid.uuid4().hex[:8], partitions) as bench:
        publish(bench, events)
        start_together, results = spawn.Barrier(parallel_runs + 1), spawn.Queue()
        workers = [spawn.Process(target=catch_up, args=(env, bench.tag, subset, max_per_partition,
                                                        start_together, results))
                   for subset in partition_sets(partitions, parallel_runs)]
        for worker in workers:
            worker.start()
        try:
            start_together.wait(READY_TIMEOUT_S)
            load_before, (busy, total) = os.getloadavg()[0], cpu_times()
            started = time.perf_counter()
            done = collect(workers, results)
            seconds = time.perf_counter() - started
            busy_after, total_after = cpu_times()
        finally:
            for worker in workers:
                worker.join(30)
                if worker.is_alive():
                    worker.terminate()
        output = output_summary(bench)
    return Measurement(partitions, parallel_runs, sum(r for r, _ in done), sum(e for _, e in done),
                       seconds, (busy_after - busy) / (total_after - total),
                       (load_before, os.getloadavg()[0]), output)


def print_row(m: Measurement, baseline: Measurement | None) -> None:
    speedup = f"{m.events_per_s / baseline.events_per_s:.2f}x" if baseline else "1.00x"
    print(f"| {m.partitions} | {m.parallel_runs} | {m.runs} | {m.events:,} | {m.seconds:.1f} | "
          f"**{m.events_per_s:,.0f}** | {speedup} | {m.cpu_busy:.0%} | "
          f"{m.load[0]:.1f} → {m.load[1]:.1f} | {m.output['kpi_digest']} |", flush=True)


def measure_parallel_runs(env: dict, args: argparse.Namespace) -> int:
    events = demo_events(args.events, args.seed)
    print(f"conditions: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; local Kafka, SeaweedFS and PostgreSQL on the same cores; "
          f"{len(events):,} demo feedback events per configuration, <= {args.max_per_partition:,} "
          f"events per partition per run; load average {os.getloadavg()}", flush=True)
    print("| partitions | parallel runs | Dagster runs | events | seconds | events/s | "
          "vs 1 run | CPU busy | load 1 min | KPI digest |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    consistent = True
    for partitions in args.partitions:
        baseline = None
        for parallel_runs in (r for r in args.runs if r <= partitions):
            m = measure(env, events, partitions, parallel_runs, args.max_per_partition)
            print_row(m, baseline)
            baseline = baseline or m
            consistent &= (m.events == len(events)
                           and m.output["kpi_digest"] == baseline.output["kpi_digest"])
    print(f"outputs (last configuration): {output_line(m.output)}")
    print("KPI tables identical for every run count of a partition count: "
          f"{'yes' if consistent else 'NO'}")
    return 0 if consistent else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream-workers", type=int, nargs="+", default=None,
                        help="measure N scale-out CDC worker processes instead of parallel runs")
    parser.add_argument("--cdc-events", type=int, default=20_000)
    parser.add_argument("--worker-partitions", type=int, default=12)
    parser.add_argument("--steady-rate", type=float, default=400.0,
                        help="CDC changes/s of the workers' steady-load phase (0: skip it)")
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--partitions", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 2, 3],
                        help="runs executing in parallel (only counts <= the partitions are run)")
    parser.add_argument("--max-per-partition", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    interrupt_on_termination()  # SIGTERM too runs the cleanup: the worker processes stop

    with services.running() as env:
        if args.stream_workers:
            from worker_scaling import measure_stream_workers

            return measure_stream_workers(env, args.stream_workers, args.cdc_events,
                                          args.worker_partitions, args.seed, args.steady_rate,
                                          args.steady_seconds)
        return measure_parallel_runs(env, args)



if __name__ == "__main__":
    sys.exit(main())
