"""Chaos: SIGKILL every part of the streaming deployment while work is in flight, under a
sustained load, and compare the end state with the load generator's own ground truth.

    .venv/bin/python bench/chaos.py [--seed 1] [--kills 20] [--kinds kafka,postgres,s3,code_server,daemon,run]

A `dagster dev` deployment (webserver, daemon, the code server whose threads are the streaming
workers) runs on a namespace of its own (topics, schema, Dagster database, buckets, LanceDB)
while `bench/chaos_load.py` sends CDC changes, feedback turns and documents. At seeded random
moments one part is killed with SIGKILL:

| kind | what is killed | in flight means |
|---|---|---|
| kafka | the broker's process group | a pipeline transaction open in PostgreSQL, still open right after the kill |
| postgres | the server's process group | a pipeline transaction open at the last sample before the kill |
| s3 | the SeaweedFS process group | a feedback or document transaction open (lake write / document read), still open after the kill |
| code_server | the process running the streaming workers | a transaction of that process (matched by its client port) open before the kill |
| daemon | the Dagster daemon (`dagster dev` exits with it) | lineage outbox rows not yet reported, or a pipeline transaction open |
| run | a run's process (runs mode: `RAG_SENSOR_MODE=runs`) | a transaction of that process (client port) open before the kill |

In-flight is sampled from `pg_stat_activity` every 50 ms; the kill follows the sample that
satisfies the condition. A kill whose condition was not met within `--arm-timeout` still
happens and is reported as a miss. The killed part is restarted as a supervisor would: the
service is started again; `dagster dev` as a whole when it exits (it does when its daemon or
code server dies). Recovery is the time from that restart until the lag — the age of the oldest
sent CDC or feedback event not yet applied — is back under `--lag-target` seconds (1 s for
streaming; the plain path's runs cannot reach that, so the `run` kills are measured against the
lag the runs deployment had before its first kill).

At the end the load stops, the deployment drains, and the oracle (`bench/chaos_load.py`)
compares records and values, the person -> customer partition, KPI sums, lake rows and chunk
rows with what was sent. Everything started here is stopped by pid, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.chaos_load import ChaosLoad, compare, read_actual  # noqa: E402
from bench.freshness import Namespace  # noqa: E402
from infra import services  # noqa: E402
from infra.dagster import DagsterService  # noqa: E402
from infra.kafka import KafkaService  # noqa: E402
from infra.postgres import PostgresService  # noqa: E402
from infra.processes import interrupt_on_termination, wait_until  # noqa: E402
from infra.s3 import S3Service  # noqa: E402
from infra.settings import InfraSettings, connection_env  # noqa: E402

STREAMING_KINDS = ("kafka", "postgres", "s3", "code_server", "daemon")
ALL_KINDS = (*STREAMING_KINDS, "run")
HARNESS_APP = "chaos-harness"
LEDGER_CONSUMERS = ("source_records", "conversation_log")
FEEDBACK_WORDS = ("feedback", "conversation", "lake", "erased", "kb_", "watermark", "turn")


@dataclass
class Kill:
    kind: str
    in_flight: bool
    evidence: str
    restarted_after_s: float = 0.0
    recovery_s: float | None = None  # None: lag never back under the target


@dataclass
class PhaseResult:
    mode: str
    kills: list[Kill] = field(default_factory=list)
    sent: dict = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    load_errors: list[str] = field(default_factory=list)
    lag_target_s: float = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Observer:
    """The harness's own PostgreSQL connection (reconnected after a kill): pipeline
    transactions, the ledger's marks for the lag, unreported outbox rows."""

    def __init__(self, base_env: dict, schema: str) -> None:
        self.env, self.schema = base_env, schema
        self.conn = None

    def _cursor(self):
        import psycopg

        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(
                host=self.env["PGHOST"], port=self.env["PGPORT"], user=self.env["PGUSER"],
                password=self.env["PGPASSWORD"], dbname=self.env["PGDATABASE"],
                autocommit=True, application_name=HARNESS_APP, connect_timeout=3)
        return self.conn.cursor()

    def query(self, sql: str, params=()) -> list[tuple] | None:
        """Rows (none while the product has not created its tables yet), or None when
        PostgreSQL cannot be reached."""
        import psycopg
        from psycopg import errors

        try:
            with self._cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        except (errors.UndefinedTable, errors.InvalidSchemaName):
            return []
        except errors.QueryCanceled:  # how psycopg reports Ctrl-C / SIGTERM during a query
            raise KeyboardInterrupt from None
        except psycopg.OperationalError:
            self.close()
            return None

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # a connection to a killed server may fail to close; it is gone
                pass
            self.conn = None

    def open_transactions(self) -> list[tuple[int, int, str]]:
        """(backend pid, client port, statement) of every open transaction of the product."""
        rows = self.query(
            "SELECT pid, client_port, query FROM pg_stat_activity WHERE datname = %s"
            " AND backend_type = 'client backend' AND xact_start IS NOT NULL"
            " AND pid <> pg_backend_pid() AND application_name <> %s",
            (self.env["PGDATABASE"], HARNESS_APP))
        return rows or []

    def unreported_outbox(self, cursors: dict[str, int]) -> int:
        rows = self.query(f'SELECT stream, max(id) FROM "{self.schema}".lineage_outbox'
                          " GROUP BY stream")
        return sum(1 for stream, top in rows or [] if top > cursors.get(stream, 0))

    def applied_marks(self) -> dict[tuple[str, int], int] | None:
        """Per (logical topic, partition): the end of the contiguous applied prefix."""
        rows = self.query(
            f'SELECT topic, partition, start_offset, end_offset FROM "{self.schema}".applied_offsets'
            " WHERE consumer = ANY(%s) ORDER BY topic, partition, start_offset",
            (list(LEDGER_CONSUMERS),))
        if rows is None:
            return None
        marks: dict[tuple[str, int], int] = {}
        for topic, partition, start, end in rows:
            key = (topic.split(".", 1)[1] if topic.startswith("chaos_") else topic, partition)
            if start <= marks.get(key, 0):
                marks[key] = max(marks.get(key, 0), end)
        return marks


def lag_s(load: ChaosLoad, observer: Observer) -> float | None:
    """Age of the oldest acknowledged CDC or feedback send not yet applied (0 when none);
    None when the ledger cannot be read."""
    marks = observer.applied_marks()
    if marks is None:
        return None
    now, oldest = time.monotonic(), None
    for (topic, partition), sends in load.send_times().items():
        mark = marks.get((topic, partition), 0)
        pending = [sent for offset, sent in sends if offset >= mark]
        if pending:
            oldest = min(pending) if oldest is None else min(oldest, min(pending))
    return 0.0 if oldest is None else now - oldest


class Deployment:
    """`dagster dev` on the namespace, restarted as a whole when it exits."""

    def __init__(self, settings: InfraSettings, ns: Namespace) -> None:
        self.service = DagsterService(settings, name=f"dagster-{ns.name}", port=free_port())
        self.env = ns.env

    def up(self) -> None:
        self.service.up(extra_env=self.env)

    def restart_if_down(self) -> bool:
        if self.service.process.running_pid() is not None and self.service.healthy():
            return False
        self.service.down()  # what is left of the old deployment, by pid
        self.up()
        return True

    def descendants(self) -> dict[int, str]:
        import psutil

        pid = self.service.process.running_pid()
        if pid is None:
            return {}
        found = {}
        for child in psutil.Process(pid).children(recursive=True):
            try:
                found[child.pid] = " ".join(child.cmdline())
            except psutil.Error:
                continue
        return found

    def pids(self, kind: str) -> list[int]:
        marks = {"daemon": ("dagster._daemon",), "code_server": ("api grpc",),
                 "run": ("spawn_main",)}[kind]  # a run: a process the code server spawns
        return [pid for pid, argv in self.descendants().items() if all(m in argv for m in marks)]


def client_ports(pids: list[int], pg_port: int) -> dict[int, int]:
    """The local ports of the processes' PostgreSQL connections -> the pid holding each."""
    import psutil

    ports = {}
    for pid in pids:
        try:
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.raddr and conn.raddr.port == pg_port:
                    ports[conn.laddr.port] = pid
        except psutil.Error:
            continue
    return ports


class Chaos:
    def __init__(self, settings: InfraSettings, args, mode: str, kinds: list[str]) -> None:
        self.settings, self.args, self.mode, self.kinds = settings, args, mode, kinds
        self.base = connection_env(settings)
        self.ns = Namespace(settings, mode, purpose="chaos")
        self.ns.env["RAG_SENSOR_MODE"] = mode
        self.rng = random.Random(f"{args.seed}-{mode}")
        self.result = PhaseResult(mode)

    def run(self) -> PhaseResult:
        res = self.ns.resources()
        self.ns.create_database()
        s3 = res["s3"].get_client()
        for bucket in {self.ns.env["RAG_KB_BUCKET"], self.ns.env["RAG_LAKE_BUCKET"]}:
            s3.create_bucket(Bucket=bucket)
        deployment = Deployment(self.settings, self.ns)
        # One run per sensor tick cannot keep up with the streaming load on two cores.
        share = 1.0 if self.mode == "streaming" else self.args.runs_load_share
        load = ChaosLoad(res["kafka"], s3, self.ns.env["RAG_KB_BUCKET"], seed=self.args.seed,
                         run=self.ns.name.split("_")[-1], cdc_rate=self.args.cdc_rate * share,
                         feedback_rate=self.args.feedback_rate * share,
                         document_every=self.args.document_every / share)
        observer = Observer(self.base, self.ns.name)
        try:
            load.start_topics()
            deployment.up()
            load.start()
            self._warm_up(load, observer)
            order = self._kill_order()
            for number, kind in enumerate(order, 1):
                time.sleep(self.rng.uniform(2.0, 8.0))
                kill = self._kill_and_restart(kind, deployment, load, observer)
                self.result.kills.append(kill)
                print(f"[{self.mode}] kill {number}/{len(order)} {kind}: in flight={kill.in_flight}"
                      f" ({kill.evidence}); restarted after {kill.restarted_after_s:.1f} s;"
                      f" recovery {_seconds(kill.recovery_s)}", flush=True)
            load.finish()
            self._converge(load, res, observer)
        finally:
            load.finish()
            observer.close()
            deployment.service.down()
            if not self.args.keep:
                self.ns.drop(res)
                shutil.rmtree(deployment.service.home, ignore_errors=True)
        self.result.sent = dict(load.sent)
        self.result.load_errors = load.errors
        return self.result

    def _kill_order(self) -> list[str]:
        rounds = -(-self.args.kills // len(self.kinds)) if self.args.kills else 1
        order = []
        for _ in range(rounds):
            batch = list(self.kinds)
            self.rng.shuffle(batch)
            order += batch
        return order[:max(self.args.kills, len(self.kinds))] if self.args.kills else order

    def _warm_up(self, load: ChaosLoad, observer: Observer) -> None:
        """Until the deployment keeps up with the load; the runs mode's lag there is its target."""
        samples, deadline = [], time.monotonic() + self.args.warm_up
        while time.monotonic() < deadline:
            lag = lag_s(load, observer)
            if lag is not None:
                samples.append(lag)
                if self.mode == "streaming" and len(samples) > 20 and max(samples[-8:]) < 1.0:
                    break
            time.sleep(0.5)
        recent = samples[-20:] or [float("inf")]
        self.result.lag_target_s = (1.0 if self.mode == "streaming"
                                    else max(1.0, statistics.median(recent)))
        print(f"[{self.mode}] warm-up: lag {statistics.median(recent):.2f} s (median of the last"
              f" {len(recent)} samples); lag target {self.result.lag_target_s:.1f} s", flush=True)

    # ------------------------------------------------------------------ one kill

    def _kill_and_restart(self, kind: str, deployment: Deployment, load: ChaosLoad,
                          observer: Observer) -> Kill:
        services_by_kind = {"kafka": KafkaService, "postgres": PostgresService, "s3": S3Service}
        if kind == "s3":
            load.pause_s3()  # documents only; CDC and feedback keep the workers busy
        if kind == "kafka":
            # Every send acknowledged before the kill and none during the outage; the workers
            # still have what was sent before the pause to read and apply.
            load.pause_kafka()
        deadline = time.monotonic() + self.args.arm_timeout
        evidence, backends, holders = "nothing in flight within the arming time", set(), []
        sampled_at = time.monotonic()
        while time.monotonic() < deadline:
            sampled_at = time.monotonic()
            evidence, backends, holders = self._in_flight(kind, deployment, observer)
            if backends:
                break
            time.sleep(0.05)
        gap_ms = 1000 * (time.monotonic() - sampled_at)
        # The process killed is the one whose transaction was seen, chosen at that sample (a
        # run found before the arming wait may have finished since).
        targets = [] if kind in services_by_kind else (holders or deployment.pids(kind))[:1]
        if kind in services_by_kind:
            services_by_kind[kind](self.settings).process.kill()
        elif not targets:
            backends, evidence = set(), f"no {kind} process found to kill"
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended between the sample and the signal: a miss
                backends, evidence = set(), f"the {kind} process ended before the signal"
        in_flight = bool(backends)
        if in_flight:
            # The kill follows the sample at once; a service's worker aborts its transaction
            # when the service dies, so "still open after" is shown, not required.
            evidence += f"; sampled {gap_ms:.0f} ms before the kill signal"
            if kind in ("kafka", "s3"):
                after = {pid for pid, _, _ in observer.open_transactions()}
                evidence += f"; still open after it: {'yes' if backends & after else 'no'}"
        killed_at = time.monotonic()
        if kind in services_by_kind:
            observer.close()
            _start_again(services_by_kind[kind](self.settings))
        if kind == "kafka":
            load.resume_kafka()
        if kind == "s3":
            load.resume_s3()
        self._supervise(kind, deployment, killed=set(targets))
        restarted = time.monotonic()
        recovery = self._recovery(load, observer, restarted)
        return Kill(kind, in_flight, evidence, restarted - killed_at, recovery)

    def _in_flight(self, kind: str, deployment: Deployment, observer: Observer
                   ) -> tuple[str, set[int], list[int]]:
        """What is in flight for this kind of kill, the backend pids of its transactions
        (empty: nothing) and, for process kinds, the pids of the processes holding them."""
        transactions = observer.open_transactions()
        holders: list[int] = []
        if kind in ("code_server", "run"):
            ports = client_ports(deployment.pids(kind), int(self.base["PGPORT"]))
            transactions = [t for t in transactions if t[1] in ports]
            holders = sorted({ports[t[1]] for t in transactions})
            what = f"transaction(s) of the {kind.replace('_', ' ')} process open"
        elif kind == "daemon":
            unreported = observer.unreported_outbox({})
            transactions = transactions if unreported else []
            what = (f"pipeline transaction(s) open, outbox rows of {unreported} stream(s) not "
                    "yet folded into the lineage")
        elif kind == "s3":
            transactions = [t for t in transactions
                            if any(w in (t[2] or "") for w in FEEDBACK_WORDS)]
            what = "feedback/document transaction(s) open"
        else:
            what = "pipeline transaction(s) open"
        return f"{len(transactions)} {what}", {pid for pid, _, _ in transactions}, holders

    def _supervise(self, kind: str, deployment: Deployment, killed: set[int]) -> None:
        """A supervisor's part: `dagster dev` exits when its daemon dies (and may when
        PostgreSQL does) and then is started again; its code server does not start a killed
        code process again (the location stays unreachable), so then the deployment is
        restarted as a whole too."""
        grace = time.monotonic() + (20 if kind in ("code_server", "daemon", "postgres") else 3)
        while time.monotonic() < grace:
            if deployment.service.process.running_pid() is None:
                break
            if kind == "code_server" and set(deployment.pids("code_server")) - killed:
                return  # a new code process (the killed one may linger as a zombie)
            time.sleep(0.5)
        if kind == "code_server" and deployment.service.process.running_pid() is not None:
            deployment.service.down()
        deployment.restart_if_down()

    def _recovery(self, load: ChaosLoad, observer: Observer, restarted: float) -> float | None:
        deadline = restarted + self.args.recovery_timeout
        while time.monotonic() < deadline:
            lag = lag_s(load, observer)
            if lag is not None and lag < self.result.lag_target_s:
                return time.monotonic() - restarted
            time.sleep(0.25)
        return None

    # ------------------------------------------------------------------ the end state

    def _converge(self, load: ChaosLoad, res: dict, observer: Observer) -> None:
        deadline = time.monotonic() + self.args.drain
        verdict = None
        while time.monotonic() < deadline:
            lag = lag_s(load, observer)
            if lag == 0.0:
                verdict = compare(load.truth, read_actual(
                    res["postgres"], res["s3"].get_client(), self.ns.env["RAG_LAKE_BUCKET"],
                    self.ns.env["LANCEDB_URI"], load.run_tag))
                if verdict.ok:
                    break
            time.sleep(5)
        if verdict is None:
            verdict = compare(load.truth, read_actual(
                res["postgres"], res["s3"].get_client(), self.ns.env["RAG_LAKE_BUCKET"],
                self.ns.env["LANCEDB_URI"], load.run_tag))
        self.result.lost, self.result.doubled = verdict.lost, verdict.doubled
        self.result.figures = verdict.figures
        print(f"[{self.mode}] end state against the ground truth {verdict.figures}: "
              f"{len(verdict.lost)} lost, {len(verdict.doubled)} applied twice", flush=True)


def _start_again(service, timeout: float = 30.0, slow_start_s: float = 300.0) -> None:
    """`up()` refuses while the killed server's port is still being released; retry. A server
    still starting when `up()`'s own bound runs out (a broker on an overloaded machine) is
    waited for, as a supervisor would, rather than ending the whole run."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            service.up()
            return
        except TimeoutError:
            if service.process.running_pid() is None:
                raise
            wait_until(service.healthy, slow_start_s, type(service).__name__, service.process)
            return
        except RuntimeError as error:
            if "is taken" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _seconds(value: float | None) -> str:
    return "not within the bound" if value is None else f"{value:.1f} s"


def run_chaos(settings: InfraSettings, args) -> list[PhaseResult]:
    """One phase per mode the kinds need: streaming kinds on a streaming deployment, `run` on a
    runs-mode deployment."""
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(ALL_KINDS)
    if unknown:
        raise ValueError(f"unknown kill kinds {sorted(unknown)}; use {','.join(ALL_KINDS)}")
    streaming = [k for k in kinds if k in STREAMING_KINDS]
    phases = [("streaming", streaming)] if streaming else []
    if "run" in kinds:
        phases.append(("runs", ["run"]))
    results = []
    total = args.kills
    for mode, phase_kinds in phases:
        share = max(len(phase_kinds), round(total * len(phase_kinds) / len(kinds)))
        phase_args = argparse.Namespace(**{**vars(args), "kills": share})
        results.append(Chaos(settings, phase_args, mode, phase_kinds).run())
    return results


def report(results: list[PhaseResult], args) -> dict:
    kills = [k for r in results for k in r.kills]
    by_kind: dict[str, list[Kill]] = defaultdict(list)
    for kill in kills:
        by_kind[kill.kind].append(kill)
    lost = sum(len(r.lost) for r in results)
    doubled = sum(len(r.doubled) for r in results)
    print(f"\n== chaos seed {args.seed}: {len(kills)} kills, "
          f"{sum(k.in_flight for k in kills)} confirmed in flight, "
          f"{sum(not k.in_flight for k in kills)} misses")
    for result in results:
        print(f"  [{result.mode}] sent {result.sent}; oracle figures {result.figures}; "
              f"lag target {result.lag_target_s:.1f} s; load errors {len(result.load_errors)}")
        for line in (result.lost + result.doubled)[:20]:
            print(f"    {line}")
    print(f"  {'kind':12s} {'kills':>5s} {'in flight':>9s} {'survived':>8s} "
          f"{'restart s':>9s} {'recovery median s':>17s} {'worst s':>8s}")
    for kind, group in sorted(by_kind.items()):
        recovered = [k.recovery_s for k in group if k.recovery_s is not None]
        worst = ("n/a" if not recovered else
                 f"{max(recovered):.1f}" if len(recovered) == len(group) else "unbounded")
        print(f"  {kind:12s} {len(group):5d} {sum(k.in_flight for k in group):9d} "
              f"{len(recovered):8d} {statistics.median([k.restarted_after_s for k in group]):9.1f} "
              f"{statistics.median(recovered) if recovered else float('nan'):17.1f} {worst:>8s}")
    summary = {"kills": len(kills), "in_flight": sum(k.in_flight for k in kills),
               "lost": lost, "doubled": doubled,
               "recovered": sum(k.recovery_s is not None for k in kills)}
    print(f"kills={summary['kills']} in_flight={summary['in_flight']} lost={lost} "
          f"doubled={doubled} recovered={summary['recovered']}")
    return summary


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kills", type=int, default=20, help="kills in all (at least one per kind)")
    p.add_argument("--kinds", default=",".join(ALL_KINDS))
    p.add_argument("--cdc-rate", type=float, default=50.0, help="CDC changes per second")
    p.add_argument("--feedback-rate", type=float, default=10.0, help="turns per second")
    p.add_argument("--document-every", type=float, default=15.0, help="seconds between uploads")
    p.add_argument("--runs-load-share", type=float, default=0.2,
                   help="share of the load rates sent to the runs-mode deployment")
    p.add_argument("--warm-up", type=float, default=120.0, help="most seconds before the first kill")
    p.add_argument("--arm-timeout", type=float, default=20.0,
                   help="most seconds to wait for work in flight before a kill")
    p.add_argument("--recovery-timeout", type=float, default=240.0)
    p.add_argument("--drain", type=float, default=300.0,
                   help="most seconds for the end state to settle after the load stops")
    p.add_argument("--keep", action="store_true", help="keep the namespaces for inspection")
    return p


def main() -> None:
    args = parser().parse_args()
    interrupt_on_termination()
    settings = InfraSettings.from_env()
    started = services.up(settings)
    os.environ.update(connection_env(settings))
    print(f"chaos bench: {os.cpu_count()} cores, seed {args.seed}, {args.kills} kills of "
          f"{args.kinds}, {args.cdc_rate} CDC changes/s + {args.feedback_rate} turns/s + a "
          f"document every {args.document_every} s, load before {os.getloadavg()[0]:.2f}",
          flush=True)
    try:
        summary = report(run_chaos(settings, args), args)
    finally:
        services.down(settings, only=set(started))
    sys.exit(0 if summary["lost"] == 0 and summary["doubled"] == 0 else 1)


if __name__ == "__main__":
    main()
