"""Feedback throughput: events/s from Kafka to the KPI tables and the conversation lake.

A backlog of demo feedback events (`rag_assets.demo.conversations`, keyed by conversation id,
late and out-of-order events included) is published to a fresh `app.feedback` topic first;
then the clock starts and the real path runs until it has caught up: `feedback_sensor` ticks
(offset ranges, at most `max_per_partition` per partition per run) and each requested run
materialises the `feedback_stream` assets in process (`conversation_log` → `feedback_scored` →
`kpi_hourly` + `kpi_daily`), against the local Kafka, S3 (SeaweedFS) and PostgreSQL.

    .venv/bin/python bench/feedback_throughput.py [--events 100000] [--partitions 4]

It uses its own topic prefix, PostgreSQL schema and bucket, and removes them at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra import services  # noqa: E402

from feedback_backlog import (  # noqa: E402  (bench/ is the script's own directory)
    RunTotals,
    demo_events,
    feedback_bench,
    output_line,
    output_summary,
    publish,
)
from sensor_runs import feedback_runs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-per-partition", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with services.running() as env:
        from sensors.feedback import FEEDBACK_RANGES

        spec = replace(FEEDBACK_RANGES, max_per_partition=args.max_per_partition)
        t = time.perf_counter()
        events = demo_events(args.events, args.seed)
        generated_s = time.perf_counter() - t
        payload_bytes = sum(len(json.dumps(e)) for e in events)
        with feedback_bench(env, uuid.uuid4().hex[:8], args.partitions) as bench:
            publish_s = publish(bench, events)
            totals = RunTotals()
            load_before = os.getloadavg()[0]
            start, cpu_start = time.perf_counter(), time.process_time()
            for run in feedback_runs(spec, bench.resources()):
                totals.add(run)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
            load_after = os.getloadavg()[0]
            output = output_summary(bench)

        print("feedback throughput: Kafka -> conversation lake (S3 Parquet) + KPI tables (PostgreSQL)")
        print(f"  machine     : {os.cpu_count()} cores, {platform.python_implementation()} "
              f"{platform.python_version()}, local Kafka/SeaweedFS/PostgreSQL on the same machine")
        print(f"  input       : {len(events):,} demo events ({payload_bytes / len(events):.0f} B avg), "
              f"{args.partitions} partitions, published beforehand in {publish_s:.1f} s "
              f"(generated in {generated_s:.1f} s)")
        print(f"  path        : feedback_sensor ticks + in-process materialize of feedback_stream, "
              f"<= {args.max_per_partition:,} events/partition/run, {totals.runs} runs")
        print(f"  result      : {totals.events:,} events in {elapsed:.1f} s = "
              f"{totals.events / elapsed:,.0f} events/s (wall clock)")
        print(f"  cpu         : this process used {cpu:.1f} CPU-s = {totals.events / cpu:,.0f} events per "
              f"CPU-second (Kafka, PostgreSQL and SeaweedFS run in their own processes); "
              f"1-min load average {load_before:.1f} before, {load_after:.1f} after")
        print("  step time   : " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(totals.step_s.items())))
        print("  ingest time : " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(totals.ingest_s.items())))
        print(f"  output      : {output_line(output)}")


if __name__ == "__main__":
    main()
