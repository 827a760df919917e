"""Freshness: change → retrievable, streaming sensors against Dagster's plain run-per-tick path.

    .venv/bin/python bench/freshness.py [--rate 200] [--duration 600] [--plain-duration S]

For each configuration — `streaming` (the product's default) and then `runs` (the plain path:
one run per sensor tick) — in the same invocation:

1. a namespace of its own (topic prefix, PostgreSQL schema, Dagster database, buckets, LanceDB
   directory) is seeded with the demo data (`rag_assets.demo`), and `dagster dev` (webserver,
   daemon, every sensor as in the demo) is started on it with `RAG_SENSOR_MODE` set;
2. once the seed is served, a steady mixed stream is produced at `--rate` changes/s for
   `--duration` s — CDC updates of a profile field, document rewrites, feedback turns (mix in
   `--mix`) — and a probe asks the retrieval call (and `kpi_hourly`, for feedback) until it sees
   each change (see `bench/freshness_probe.py`);
3. after the stream stops the probe waits up to `--drain` s; a change still unseen then is
   counted at that time (so its percentile is a lower bound, shown with ">=");
4. the lineage is read back over GraphQL: CDC events in `source_records` materialisations against
   events sent, and the delay from a micro-batch's commit to its materialisation record.

Services (Kafka, S3, PostgreSQL) are started if they are not running, and stopped at the end if
this script started them; each namespace and its `dagster dev` are removed at the end.
The last line is `profile_p95=… doc_p95=… kpi_p95=… vs_plain=…x` (streaming figures; vs_plain
is the smallest of the three plain/streaming p95 ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import threading
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cdc_mix import DEFAULT_REALISTIC_MIX, REALISTIC_KINDS, RealisticCdc  # noqa: E402
from bench.freshness_probe import (  # noqa: E402
    ALL_KINDS,
    KINDS,
    POISON,
    CachedQuestionEmbedder,
    Ledger,
    LoadGenerator,
    Probe,
    percentile,
    summarise,
)
from infra import services  # noqa: E402
from infra.processes import interrupt_on_termination, tree_cpu_seconds  # noqa: E402
from infra.dagster import DagsterService  # noqa: E402
from infra.postgres import PostgresService  # noqa: E402
from infra.settings import InfraSettings, connection_env  # noqa: E402

PROBE_MEMBERS = 8
PROBE_DOCUMENTS = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Namespace:
    """Everything one configuration writes, named apart from the demo and the other run."""

    def __init__(self, settings: InfraSettings, mode: str, purpose: str = "fresh") -> None:
        self.name = f"{purpose}_{mode.replace('+', '_')}_{uuid.uuid4().hex[:6]}"
        self.settings = settings
        self.base = connection_env(settings)
        dash = self.name.replace("_", "-")
        self.env = {
            "RAG_TOPIC_PREFIX": f"{self.name}.", "RAG_PG_SCHEMA": self.name,
            "DAGSTER_PG_DB": self.name, "RAG_KB_BUCKET": f"{dash}-kb",
            "RAG_LAKE_BUCKET": f"{dash}-lake", "RAG_SENSOR_MODE": mode.split("+")[0],
            "LANCEDB_URI": str(settings.state_dir / "bench-freshness" / self.name / "lancedb"),
        }

    def resources(self):
        from resources.defaults import resource_from_environment

        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            return {key: resource_from_environment(key)
                    for key in ("kafka", "s3", "postgres", "lancedb", "embedder")}
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def create_database(self) -> None:
        """The Dagster database of this configuration (infra's admin login: PGUSER may not)."""
        PostgresService(self.settings).create_database(self.name)

    def drop(self, res: dict) -> None:
        from kafka import KafkaAdminClient

        PostgresService(self.settings).drop_database(self.name)
        with res["postgres"].transaction() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')
        admin = KafkaAdminClient(**res["kafka"].client_config())
        try:
            mine = [t for t in admin.list_topics() if t.startswith(self.env["RAG_TOPIC_PREFIX"])]
            if mine:
                admin.delete_topics(mine)
        finally:
            admin.close()
        client = res["s3"].get_client()
        for bucket in {self.env["RAG_KB_BUCKET"], self.env["RAG_LAKE_BUCKET"]}:
            try:
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                    for item in page.get("Contents", []):
                        client.delete_object(Bucket=bucket, Key=item["Key"])
                client.delete_bucket(Bucket=bucket)
            except client.exceptions.NoSuchBucket:
                pass


def seed(ns: Namespace, res: dict):
    from rag_assets.demo.publisher import DemoConfig, DemoPublisher

    config = DemoConfig(topic_prefix=ns.env["RAG_TOPIC_PREFIX"],
                        knowledge_bucket=ns.env["RAG_KB_BUCKET"], knowledge_prefix="knowledge-base/",
                        people=200, feedback_conversations=20, documents=12)
    publisher = DemoPublisher(res["kafka"], res["s3"], config)
    publisher.initial_load()
    client = res["s3"].get_client()
    if ns.env["RAG_LAKE_BUCKET"] != ns.env["RAG_KB_BUCKET"]:
        client.create_bucket(Bucket=ns.env["RAG_LAKE_BUCKET"])
    return publisher


def publish_population(publisher, population: RealisticCdc) -> int:
    """The bench population's records as CDC inserts, 500 to a source transaction; returns how
    many."""
    ts_ms, sent = int(time.time() * 1000), 0
    for row in population.seed_rows():
        publisher.send_change(row, ts_ms, new_transaction=sent % 500 == 0)
        sent += 1
    publisher.flush()
    return sent


def wait_until_linked(res: dict, keys: list[str], timeout_s: float) -> float:
    """Seconds until every given record belongs to a customer."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        with res["postgres"].transaction() as cur:
            cur.execute("SELECT count(*) FROM customer_assignments WHERE record_key = ANY(%s)",
                        (keys,))
            if cur.fetchone()[0] == len(keys):
                return time.monotonic() - started
        time.sleep(2)
    raise TimeoutError("the bench population was not linked in time")


def wait_until_drained(res: dict, timeout_s: float) -> float:
    """Seconds until the identity and profile queues are empty: the stack has caught up with
    the seed, so the clock does not start behind its derived work."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        with res["postgres"].transaction() as cur:
            cur.execute("SELECT (SELECT count(*) FROM identity_pending)"
                        " + (SELECT count(*) FROM profile_pending)")
            if cur.fetchone()[0] == 0:
                return time.monotonic() - started
        time.sleep(1)
    raise TimeoutError("the seed's identity and profile work was not done in time")


def population_premise(res: dict, population: RealisticCdc) -> dict[str, int]:
    """Customers holding records of two bench people (must be 0: the expectations assume
    people cannot be confused) and bench people spread over several customers (twins apart:
    not linked until merged), as linked after the seed."""
    with res["postgres"].transaction() as cur:
        cur.execute("SELECT record_key, customer_id FROM customer_assignments"
                    " WHERE record_key = ANY(%s)", (list(population.truth),))
        assigned = cur.fetchall()
    people_of: dict[str, set[int]] = {}
    customers_of: dict[int, set[str]] = {}
    for key, customer in assigned:
        people_of.setdefault(customer, set()).add(population.truth[key])
        if key not in population.twin_keys:
            customers_of.setdefault(population.truth[key], set()).add(customer)
    return {"customers_mixing_people": sum(len(p) > 1 for p in people_of.values()),
            "people_split": sum(len(c) > 1 for c in customers_of.values())}


def wait_until_served(res: dict, members: list[dict], doc_keys: list[str], timeout_s: float) -> float:
    """Seconds until the seed's probe members have profiles and the probe documents are indexed."""
    started = time.monotonic()
    schema = res["postgres"].db_schema
    while time.monotonic() - started < timeout_s:
        try:
            with res["postgres"].transaction() as cur:
                cur.execute(f'SELECT count(*) FROM "{schema}".customer_assignments'
                            " WHERE record_key = ANY(%s)",
                            ([f"loyalty.members:{m['id']}" for m in members],))
                linked = cur.fetchone()[0]
                cur.execute(f'SELECT count(*) FROM "{schema}".kb_documents WHERE status = '
                            "'indexed' AND doc_key = ANY(%s)", (doc_keys,))
                indexed = cur.fetchone()[0]
                cur.execute(f'SELECT count(*) FROM "{schema}".customer_profiles')
                profiles = cur.fetchone()[0]
            if linked == len(members) and indexed == len(doc_keys) and profiles:
                return time.monotonic() - started
        except Exception:  # tables not created yet
            pass
        time.sleep(2)
    raise TimeoutError("the seed data was not served in time")


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        body = json.load(response)
    if "errors" in body:
        raise RuntimeError(body["errors"])
    return body["data"]


def lineage(url: str) -> dict:
    """CDC events recorded in `source_records` materialisations, and the delay from a streamed
    micro-batch's last commit to the materialisation that reports it."""
    data = graphql(url, '{ assetOrError(assetKey: {path: ["source_records"]}) { ... on Asset {'
                        ' assetMaterializations(limit: 10000) { timestamp metadataEntries {'
                        ' label ... on IntMetadataEntry { intRepr }'
                        ' ... on TextMetadataEntry { text } } } } } }')
    events, delays = 0, []
    for materialisation in data["assetOrError"]["assetMaterializations"]:
        entries = {e["label"]: e.get("intRepr", e.get("text")) for e in materialisation["metadataEntries"]}
        events += int(entries.get("events_read") or 0)
        if entries.get("last_applied_at"):
            applied = datetime.fromisoformat(entries["last_applied_at"]).timestamp()
            delays.append(int(materialisation["timestamp"]) / 1000 - applied)
    return {"cdc_events_in_lineage": events, "materialisations": len(
        data["assetOrError"]["assetMaterializations"]),
        "lineage_delay_p95_s": round(percentile(delays, 0.95), 2) if delays else None}


def settled_lineage(url: str, events_sent: int, timeout_s: float = 90.0) -> dict:
    """`lineage` once every event sent is in it, or after `timeout_s` (ticks report what the
    workers committed a few seconds late, later on a loaded machine): read every 5 s."""
    started = time.monotonic()
    while True:
        result = lineage(url)
        waited = time.monotonic() - started
        if result["cdc_events_in_lineage"] >= events_sent or waited >= timeout_s:
            return {**result, "lineage_waited_s": round(waited)}
        time.sleep(5)


def run_configuration(settings: InfraSettings, mode: str, args) -> dict:
    ns = Namespace(settings, mode)
    res = ns.resources()
    ns.create_database()
    dagster = DagsterService(settings, name=f"dagster-{ns.name}", port=free_port())
    try:
        publisher = seed(ns, res)
        dagster.up(extra_env=ns.env)
        members = publisher.sources.rows("loyalty", "members")[:PROBE_MEMBERS]
        documents = {key: doc.body().decode() if isinstance(doc.body(), bytes) else doc.body()
                     for key, doc in sorted(publisher.documents.items())[:PROBE_DOCUMENTS]}
        population = None
        if args.profile_load == "realistic":
            population = RealisticCdc(people=args.population, twins=args.twins)
            population_records = publish_population(publisher, population)
            print(f"[{mode}] bench population: {args.population:,} people, {population_records:,} records "
                  f"published", flush=True)
        seed_s = wait_until_served(res, members, ["knowledge-base/" + k for k in documents],
                                   args.seed_timeout)
        if population is not None:
            seed_s += wait_until_linked(res, list(population.truth), args.seed_timeout)
            seed_s += wait_until_drained(res, args.seed_timeout)
            premise = population_premise(res, population)
            print(f"[{mode}] population linked: {premise}", flush=True)
            if premise["customers_mixing_people"]:
                raise RuntimeError("the bench population is not separable; its expectations "
                                   "would be wrong")
        print(f"[{mode}] seed served after {seed_s:.0f} s", flush=True)

        from rag_assets.retrieval.context import RetrievalService

        service = RetrievalService(res["postgres"], res["lancedb"],
                                   CachedQuestionEmbedder(res["embedder"].get_embedder()))
        ledger = Ledger()
        mix, rate = profile_mix(args), args.rate
        if mode.endswith("+poison"):  # poison on top of the same rate of good changes
            mix = {**mix, POISON: args.poison_share * sum(mix.values())}
            rate = args.rate * (1 + args.poison_share)
        def load_with(ledger: Ledger, mix: dict[str, float], rate: float) -> LoadGenerator:
            return LoadGenerator(publisher, res["s3"].get_client(), ns.env["RAG_KB_BUCKET"],
                                 "knowledge-base/", ledger, rate, mix, members, documents,
                                 publisher.config.partitions, population=population)

        load = load_with(ledger, mix, rate)
        probe = Probe(service, res["postgres"], ledger, "knowledge-base/" + sorted(documents)[0])
        loads: list[float] = []
        sampler = threading.Thread(target=_sample_load, args=(loads, load.stop_event), daemon=True)
        duration = args.duration if mode == "streaming" else (args.plain_duration or args.duration)
        started, cpu_started = time.monotonic(), time.process_time()
        # The wall clock too, to line the per-minute figures up with the deployment's own log.
        print(f"[{mode}] sending from {time.strftime('%H:%M:%S', time.gmtime())} UTC", flush=True)
        for thread in (probe, load, sampler):
            thread.start()
        time.sleep(duration)
        load.stop_event.set()
        load.join()
        stopped = time.monotonic()
        while ledger.unsettled() and time.monotonic() - stopped < args.drain:
            time.sleep(0.5)
        probe.stop_event.set()
        probe.join()
        censor_at = time.monotonic()
        bench_cpu = (time.process_time() - cpu_started) / (censor_at - started)
        result = {
            "mode": mode, "duration_s": duration, "sent": dict(load.sent),
            "sustained_rate": round(sum(load.sent.values()) / (stopped - started), 1),
            "producer_behind_max_s": round(load.behind_max_s, 2),
            "probe_cycles": probe.cycles, "probe_cycle_max_s": round(probe.cycle_s_max, 3),
            "probe_errors": probe.errors, "seed_served_s": round(seed_s, 1),
            "probe_cross_check": (probe.cross_checked, probe.cross_check_differences),
            "bench_cpu_share": round(bench_cpu, 2),
            "load_1m": [min(loads, default=0), sum(loads) / max(1, len(loads)), max(loads, default=0)],
            "kinds": summarise(ledger, started, censor_at),
            "cdc_events_sent": sum(publisher.sent[t] for t in publisher.sent if ".cdc." in t),
        }
        try:
            result.update(settled_lineage(dagster.url, result["cdc_events_sent"]))
        except Exception as error:  # the figures above stand without it
            result.update(cdc_events_in_lineage=f"unavailable ({error})", materialisations="?",
                          lineage_delay_p95_s=None)
        if args.cost_seconds > 0:
            stack = [dagster.process.running_pid()] + [
                s.process.running_pid() for s in services.all_services(settings)]
            result["cost"] = change_costs(
                [pid for pid in stack if pid], mix, args, service, res["postgres"],
                "knowledge-base/" + sorted(documents)[0], load_with)
        return result
    finally:
        dagster.down()
        if not args.keep:
            ns.drop(res)


def change_costs(stack_pids: list[int], mix: dict[str, float], args, service, postgres,
                 doc_key: str, load_with) -> dict[str, dict]:
    """CPU-seconds per 1,000 changes of each kind alone, for the whole stack (the Dagster
    deployment with its code server and workers, Kafka, PostgreSQL, the S3 server) and for this
    process (the producer and the probe's look-ups, which stand for retrieval): `--cost-seconds`
    of that kind alone at `--cost-rate` (one rate for every kind: a micro-batch's fixed costs
    are shared by the changes it holds), until seen, less what the same processes used while
    idle just before (half as long)."""
    def cpu() -> tuple[float, float]:
        return sum(tree_cpu_seconds(pid) for pid in stack_pids), time.process_time()

    costs = {}
    for kind in [k for k in mix if k != POISON]:
        idle_before, t0 = cpu(), time.monotonic()
        time.sleep(args.cost_seconds / 2)
        idle_rate = [(a - b) / (time.monotonic() - t0)
                     for a, b in zip(cpu(), idle_before, strict=True)]
        ledger = Ledger()
        load = load_with(ledger, {kind: 1.0}, args.cost_rate)
        probe = Probe(service, postgres, ledger, doc_key)
        before, t0 = cpu(), time.monotonic()
        probe.start()
        load.start()
        time.sleep(args.cost_seconds)
        load.stop_event.set()
        load.join()
        stopped = time.monotonic()
        while ledger.unsettled() and time.monotonic() - stopped < args.drain:
            time.sleep(0.5)
        time.sleep(2)  # the last micro-batch's materialisations
        probe.stop_event.set()
        probe.join()
        after, elapsed = cpu(), time.monotonic() - t0
        sent = max(1, len(ledger.changes.get(kind, [])))
        stack_s, bench_s = (a - b - r * elapsed
                            for a, b, r in zip(after, before, idle_rate, strict=True))
        summary = summarise(ledger, t0, time.monotonic())[kind]
        costs[kind] = {"changes": sent, "stack_cpu_s_per_1000": round(1000 * stack_s / sent, 2),
                       "bench_cpu_s_per_1000": round(1000 * bench_s / sent, 2),
                       "idle_stack_cpu_per_s": round(idle_rate[0], 3),
                       "p95": round(summary["p95"], 2), "unseen": summary["unseen"]}
        print(f"  cost {kind:12s} {costs[kind]}", flush=True)
    return costs


def headline_p95(result: dict) -> dict[str, float]:
    """p95 per headline kind; with the realistic load, `profile` is its worst kind."""
    p95 = {k: result["kinds"][k]["p95"] for k in KINDS}
    realistic = [result["kinds"][k]["p95"] for k in REALISTIC_KINDS if k in result["kinds"]]
    if realistic:
        p95["profile"] = max(realistic)
    return p95


def profile_mix(args) -> dict[str, float]:
    """`--mix`, with its `profile` share spread over the realistic kinds for
    `--profile-load realistic`."""
    mix = dict(args.mix)
    if args.profile_load == "realistic" and "profile" in mix:
        share, total = mix.pop("profile"), sum(DEFAULT_REALISTIC_MIX.values())
        mix.update({kind: share * weight / total for kind, weight in DEFAULT_REALISTIC_MIX.items()})
    return mix


def _sample_load(samples: list[float], stop: threading.Event) -> None:
    while not stop.wait(10):
        samples.append(os.getloadavg()[0])


def report(result: dict) -> None:
    print(f"\n== {result['mode']}: {result['duration_s']} s at {result['sustained_rate']} changes/s "
          f"sustained (sent {result['sent']}), load 1m min/mean/max "
          f"{result['load_1m'][0]:.1f}/{result['load_1m'][1]:.1f}/{result['load_1m'][2]:.1f}")
    for kind in [k for k, figures in result["kinds"].items() if figures["changes"]]:
        k = result["kinds"][kind]
        bound = ">=" if k["unseen"] else ""
        print(f"  {kind:8s} n={k['changes']:6d} p50={bound}{k['p50']:.2f}s p95={bound}{k['p95']:.2f}s "
              f"p99={bound}{k['p99']:.2f}s max={bound}{k['max']:.2f}s unseen={k['unseen']}")
        print(f"           p95 per minute of sending (lag trend): {k['p95_by_minute']}")
    print(f"  lineage: {result['cdc_events_in_lineage']} of {result['cdc_events_sent']} CDC events "
          f"in {result['materialisations']} source_records materialisations; "
          f"commit -> materialisation p95 {result['lineage_delay_p95_s']} s; read "
          f"{result.get('lineage_waited_s', '?')} s after the probe saw every change")
    print(f"  probe: {result['probe_cycles']} cycles, slowest {result['probe_cycle_max_s']} s, "
          f"errors {result['probe_errors']}, look-ups cross-checked against find_profile "
          f"{result['probe_cross_check'][0]} with {result['probe_cross_check'][1]} differences; "
          f"producer at most {result['producer_behind_max_s']} s "
          f"behind its pace; seed served in {result['seed_served_s']} s; this script (producer + "
          f"probe) used {result['bench_cpu_share']} of a core")


def parse_mix(text: str) -> dict[str, float]:
    mix = {kind: float(share) for kind, share in (part.split("=") for part in text.split(","))}
    unknown = set(mix) - set(ALL_KINDS) - {POISON}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown kinds {sorted(unknown)}; use {ALL_KINDS + (POISON,)}")
    return mix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="changes per second")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--plain-duration", type=float, default=None,
                        help="seconds of load for the plain path (default: --duration)")
    parser.add_argument("--mix", type=parse_mix, default=parse_mix("profile=0.70,kpi=0.28,document=0.02"))
    parser.add_argument("--drain", type=float, default=120.0,
                        help="seconds to wait for unseen changes after the stream stops")
    parser.add_argument("--seed-timeout", type=float, default=900.0)
    parser.add_argument("--modes", default="streaming,runs",
                        help="streaming, runs, or streaming+poison: streaming while poison events "
                             "(--poison-share of the good changes' rate) go to a CDC topic beside "
                             "the probed one and to the feedback topic")
    parser.add_argument("--poison-share", type=float, default=0.05)
    parser.add_argument("--keep", action="store_true", help="keep the namespaces for inspection")
    parser.add_argument("--profile-load", choices=("demo", "realistic"), default="demo",
                        help="demo: points updates of eight members (the cheapest change); "
                             "realistic: the `profile` share spread over bench/cdc_mix.py's kinds "
                             "(new customers, merges, splits, deletes, ...) over --population people")
    parser.add_argument("--population", type=int, default=50_000)
    parser.add_argument("--twins", type=int, default=1_000,
                        help="people with a second loyalty record that merges and splits")
    parser.add_argument("--cost-seconds", type=float, default=0.0,
                        help="after the run, this long per kind alone to measure CPU per change")
    parser.add_argument("--cost-rate", type=float, default=50.0,
                        help="changes/s of each kind alone in the cost measurement")
    args = parser.parse_args()
    interrupt_on_termination()

    settings = InfraSettings.from_env()
    started_services = services.up(settings)
    os.environ.update(connection_env(settings))
    print(f"freshness bench: {platform.node()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, rate {args.rate}/s, mix {args.mix}, load before "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    results = {}
    try:
        for mode in args.modes.split(","):
            results[mode] = run_configuration(settings, mode, args)
            report(results[mode])
    finally:
        services.down(settings, only=set(started_services))
    stream = results.get("streaming")
    if stream:
        p95 = headline_p95(stream)
        ratio = "n/a"
        if "runs" in results:
            plain = headline_p95(results["runs"])
            ratios = [plain[k] / p95[k] for k in KINDS if p95[k] > 0]
            ratio = f"{min(ratios):.1f}"
        print(f"profile_p95={p95['profile']:.2f}s doc_p95={p95['document']:.2f}s "
              f"kpi_p95={p95['kpi']:.2f}s vs_plain={ratio}x")
    poisoned = results.get("streaming+poison")
    if stream and poisoned:
        print("with poison / without, p95: " + " ".join(
            f"{k}={poisoned['kinds'][k]['p95'] / stream['kinds'][k]['p95']:.2f}x" for k in KINDS))


if __name__ == "__main__":
    main()
