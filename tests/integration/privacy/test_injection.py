"""SQL and filter injection: every statement is parameterised, every LanceDB filter escaped.

* Statically: every SQL string the product builds at run time (f-strings, `%`, `+`, `.format`
  handed to `execute`/`executemany`/`copy`) interpolates only reviewed identifiers and column
  lists (`REVIEWED`), `psycopg.sql` composition, never a value; and every LanceDB filter goes
  through the escaping helpers.
* Dynamically, against the real services: injection strings in every text field of CDC rows
  (and primary keys), feedback events, document keys and customer references (lookup,
  retrieval, erasure by CLI and by Kafka event) are stored and returned as data, every table
  is intact afterwards, and nothing extra is returned.
"""

import argparse
import ast
import io
import json
import pathlib
from datetime import UTC, datetime, timedelta

import pytest
from dagster import materialize

from rag_assets.privacy.assets import customer_erasures
from rag_assets.privacy.cli_commands import erase_cli
from rag_assets.customers.lookup import InvalidReference, find_profile
from rag_assets.demo.debezium import DebeziumEncoder
from rag_assets.feedback.assets import (
    conversation_log,
    feedback_scored,
    finetune_dataset,
    kpi_daily,
)
from rag_assets.feedback.lake_store import read_lake_events
from rag_assets.retrieval.context import InvalidRequest, RetrievalService
from resources.sentiment import SentimentResource
from tests.hostile_strings import INJECTIONS
from tests.integration.customers.helpers import catch_up, publish

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[3]

# --------------------------------------------------------------------------- static

SQL_CALLS = {"execute", "executemany", "copy"}
LANCE_FILTER_CALLS = {"where", "delete", "when_not_matched_by_source_delete"}
LANCE_ESCAPERS = {"doc_key_filter", "doc_keys_filter", "sql_string_literal"}
# (file, interpolated expression): identifiers and column lists, each checked by hand.
REVIEWED = {
    ("rag_assets/customers/source_store.py", "_COLUMNS"),       # constant column list
    ("rag_assets/customers/source_store.py", "KEY_IN_ARRAYS"),  # constant predicate, values as %s
    ("rag_assets/feedback/turn_store.py", "quoted"),            # quoted constant column names
    ("rag_assets/knowledge/registry.py", "_STILL_QUEUED"),      # constant predicate with %s
    # whole statements built at import from the constant column list and predicate above them
    ("rag_assets/knowledge/registry.py", "variable _NEXT_BATCH"),
    ("rag_assets/knowledge/registry.py", "variable _CLAIM_BATCH"),
    ("infra/postgres_roles.py", "variable _OWNED_OBJECTS"),     # constant catalogue query
    # constant ON CONFLICT clauses of the work queues (rag_assets/platform/work_queue.py)
    ("rag_assets/customers/source_store.py", "QUEUE_RECORD_AGAIN"),
    ("rag_assets/customers/identity_linking.py", "QUEUE_RECORD_AGAIN"),
    ("rag_assets/customers/catalogue_sync.py", "QUEUE_RECORD_AGAIN"),
    ("rag_assets/customers/identity_linking.py", "QUEUE_CUSTOMER_AGAIN"),
    ("rag_assets/customers/identity_store.py", "QUEUE_CUSTOMER_AGAIN"),
    ("rag_assets/customers/profile_refresh.py", "QUEUE_CUSTOMER_AGAIN"),
    ("rag_assets/customers/dead_letter_replay.py", "QUEUE_RECORD_AGAIN"),
    ("rag_assets/customers/dead_letter_replay.py", "QUEUE_CUSTOMER_AGAIN"),
}


def _dynamic_sql(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, what) for each run-time-built piece of SQL passed to a cursor in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in SQL_CALLS and node.args):
            continue
        if "merge_insert" in ast.unparse(node.func.value):
            continue  # LanceDB's merge builder takes rows, not SQL
        arg = node.args[0]
        if isinstance(arg, ast.Name):
            found.append((node.lineno, f"variable {arg.id}"))
        for sub in ast.walk(arg):
            if isinstance(sub, ast.FormattedValue):
                found.append((node.lineno, ast.unparse(sub.value)))
            elif isinstance(sub, ast.BinOp) and isinstance(sub.op, (ast.Mod, ast.Add)):
                found.append((node.lineno, f"string operator: {ast.unparse(sub)[:60]}"))
            elif (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute)
                  and sub.func.attr == "format"
                  and not ast.unparse(sub.func.value).startswith("sql.SQL(")):
                found.append((node.lineno, f"str.format: {ast.unparse(sub)[:60]}"))
    return found


def _unescaped_lance_filters(path: pathlib.Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in LANCE_FILTER_CALLS and node.args):
            continue
        arg = node.args[0]
        if isinstance(arg, ast.JoinedStr) or (
                isinstance(arg, ast.BinOp) and isinstance(arg.op, (ast.Add, ast.Mod))):
            found.append((node.lineno, ast.unparse(arg)[:80]))
    return found


def test_the_scanner_sees_values_spliced_into_sql(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(cur, table, value, q):\n"
        "    cur.execute(f\"SELECT * FROM t WHERE a = '{value}'\")\n"
        "    cur.execute(\"SELECT * FROM t WHERE a = '%s'\" % value)\n"
        "    cur.execute(\"SELECT * FROM {}\".format(table))\n"
        "    cur.execute(q)\n"
        "    cur.execute(\"SELECT 1 WHERE a = %s\", (value,))\n"
        "    table.delete(f\"doc_key = '{value}'\")\n")
    assert [line for line, _ in _dynamic_sql(bad)] == [2, 3, 4, 5]
    assert [line for line, _ in _unescaped_lance_filters(bad)] == [7]


def test_every_sql_statement_is_parameterised_and_every_filter_escaped():
    unreviewed, unescaped, seen = [], [], set()
    for folder in ("rag_assets", "resources", "sensors", "infra"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            for line, what in _dynamic_sql(path):
                seen.add((relative, what))
                if (relative, what) not in REVIEWED:
                    unreviewed.append(f"{relative}:{line}: {what}")
            if "knowledge" in relative:
                unescaped += [f"{relative}:{line}: {what}"
                              for line, what in _unescaped_lance_filters(path)]
    assert not unreviewed, "SQL built from run-time values (use %s parameters or psycopg.sql):\n" \
        + "\n".join(unreviewed)
    assert not unescaped, "LanceDB filters built without the escaping helpers:\n" + "\n".join(unescaped)
    # A reviewed entry whose SQL is gone would let new code of the same name in unreviewed.
    assert not REVIEWED - seen, f"reviewed entries that match nothing: {sorted(REVIEWED - seen)}"
    # The helpers themselves: a quote is doubled, so the value stays one literal.
    from rag_assets.knowledge.chunk_store import doc_key_filter
    assert doc_key_filter("a' OR '1'='1") == "doc_key = 'a'' OR ''1''=''1'"


# --------------------------------------------------------------------------- customers, feedback


def _tables(postgres) -> dict[str, int]:
    with postgres.transaction() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (postgres.db_schema,))
        names = sorted(row[0] for row in cur.fetchall())
        counts = {}
        for name in names:
            cur.execute(f'SELECT count(*) FROM "{name}"')  # names from the catalogue
            counts[name] = cur.fetchone()[0]
    return counts


def test_injection_strings_in_cdc_feedback_and_references_are_data(kafka, postgres, s3, lancedb):
    normal = {"id": 1, "first_name": "Nora", "last_name": "Lind", "email": "nora.lind@example.org",
              "phone": "+447700900301", "date_of_birth": "1980-01-01", "address_line1": "1 High St",
              "city": "Leeds", "postcode": "LS1 1AA", "country": "GB", "national_id": "QQ100000A"}
    hostile = [{"id": text, "first_name": text, "last_name": text, "email": text, "phone": text,
                "date_of_birth": text, "address_line1": text, "city": text, "postcode": text,
                "country": text, "national_id": text} for text in INJECTIONS]
    encoder = DebeziumEncoder(topic_prefix=kafka.topic_prefix)
    publish(kafka, encoder.snapshot("crm", "customers", [normal, *hostile], 1_000))
    catch_up(kafka, postgres)

    t0 = datetime(2025, 4, 1, 8, tzinfo=UTC)
    feedback = [{"conversation_id": text, "turn_id": text, "customer_ref": text,
                 "ts": (t0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                 "question": text, "answer": text, "model_id": text, "latency_ms": 100,
                 "retrieved_ids": [text], "rating": 5, "comment": text}
                for i, text in enumerate(INJECTIONS)]
    feedback.append({**feedback[0], "conversation_id": "normal", "turn_id": 1,
                     "customer_ref": "crm:1", "question": "normal question", "model_id": "m"})
    topic = kafka.topic("app.feedback")
    kafka.create_topics([topic], partitions=1)
    producer = kafka.producer()
    for event in feedback:
        producer.send(topic, value=json.dumps(event).encode())
    producer.flush()
    resources = {"kafka": kafka, "s3": s3, "postgres": postgres, "sentiment": SentimentResource()}
    assert materialize([conversation_log, feedback_scored, kpi_daily, finetune_dataset],
                       resources=resources).success

    tables = _tables(postgres)
    for name in ("source_records", "identity_nodes", "customer_profiles", "feedback_turns",
                 "erased_customers", "kpi_daily", "dead_letters", "applied_offsets"):
        assert name in tables, name
    assert tables["source_records"] == 1 + len(INJECTIONS)
    assert tables["feedback_turns"] == 1 + len(INJECTIONS)
    with postgres.transaction() as cur:
        # Stored exactly as sent.
        cur.execute("SELECT pk, row_data->>'email' FROM source_records WHERE pk = ANY(%s)",
                    (INJECTIONS,))
        assert dict(cur.fetchall()) == {text: text for text in INJECTIONS}
        cur.execute("SELECT conversation_id, customer_ref, model_id FROM feedback_turns"
                    " WHERE conversation_id = ANY(%s)", (INJECTIONS,))
        assert {(c, r, m) for c, r, m in cur.fetchall()} == {(t, t, t) for t in INJECTIONS}
        # A reference is data: no hostile string finds a profile, the normal one finds Nora.
        for text in INJECTIONS:
            try:
                assert find_profile(cur, text) is None, text
            except InvalidReference:
                pass
        assert find_profile(cur, "nora.lind@example.org")["customer_id"].startswith("cus_")
    lake = {e.conversation_id: e for e in read_lake_events(s3, s3.get_client())}
    assert {t: (lake[t].question, lake[t].customer_ref) for t in INJECTIONS} == {
        t: (t, t) for t in INJECTIONS}

    service = RetrievalService(postgres, lancedb, embedder=None)
    for text in INJECTIONS:
        try:
            bundle = service.context(text, "q", k=1, doc_keys=[text])
        except InvalidRequest:
            continue
        assert bundle["customer"] is None and bundle["chunks"] == []

    # Erasure by a hostile reference (CLI and Kafka) erases only the turns sent under it.
    target = INJECTIONS[1]
    args = argparse.Namespace(customer=target, yes=True, request_id="req-inj", json=True,
                              pg_schema=None)
    erase_cli(args, postgres=postgres, s3=s3, out=io.StringIO())
    erasure_topic = kafka.topic("privacy.erasure")
    kafka.create_topics([erasure_topic], partitions=1)
    for text in INJECTIONS[2:4]:
        producer.send(erasure_topic, value=json.dumps(
            {"customer_ref": text, "request_id": text}).encode())
    producer.flush()
    producer.close()
    assert materialize([customer_erasures], resources=resources).success
    after = _tables(postgres)
    assert set(after) >= set(tables)
    assert after["source_records"] == tables["source_records"]
    assert after["customer_profiles"] == tables["customer_profiles"]
    assert after["feedback_turns"] == tables["feedback_turns"] - 3
    with postgres.transaction() as cur:
        cur.execute("SELECT customer_ref FROM feedback_turns")
        remaining = {row[0] for row in cur.fetchall()}
        cur.execute("SELECT request_id FROM erasure_requests ORDER BY request_id")
        requests = [row[0] for row in cur.fetchall()]
    assert remaining == (set(INJECTIONS) - set(INJECTIONS[1:4])) | {"crm:1"}
    assert sorted(requests) == sorted(["req-inj", *INJECTIONS[2:4]])


# --------------------------------------------------------------------------- document keys


@pytest.fixture(scope="module")
def minilm():
    from resources.embedder import EmbedderResource

    return EmbedderResource()


def test_hostile_document_keys_are_data(kafka, postgres, s3, lancedb, minilm):
    from rag_assets.knowledge.assets import document_chunks, documents

    prefix = s3.knowledge_prefix
    bodies = {
        "plain/baggage.md": "# Baggage\n\nOne cabin bag of up to 8 kg per passenger.\n",
        "x'; DROP TABLE source_records; --.md": "# Pets\n\nSmall dogs may travel in the cabin.\n",
        "' OR '1'='1.txt": "Refunds go back to the original form of payment.\n",
        "a'' OR doc_key <> '.md": "Lounge access for Gold members.\n",
    }
    client = s3.get_client()
    for key, body in bodies.items():
        client.put_object(Bucket=s3.knowledge_bucket, Key=prefix + key, Body=body.encode())
    resources = {"s3": s3, "postgres": postgres, "lancedb": lancedb, "kafka": kafka,
                 "embedder": minilm}
    assert materialize([documents, document_chunks], resources=resources).success
    service = RetrievalService(postgres, lancedb, minilm.get_embedder())

    def keys(**kwargs):
        bundle = service.context("nobody@example.org", "dogs bags refunds lounge", k=10, **kwargs)
        return {c["provenance"]["doc_key"] for c in bundle["chunks"]}

    assert keys() == {prefix + k for k in bodies}
    for key in bodies:
        assert keys(doc_keys=[prefix + key]) == {prefix + key}, key
    for text in INJECTIONS + ["x') OR (doc_key <> '", "' OR 1=1 OR doc_key = '"]:
        assert keys(doc_keys=[text]) == set(), text

    # Deleting the hostile-keyed document removes its chunks only.
    client.delete_object(Bucket=s3.knowledge_bucket, Key=prefix + "' OR '1'='1.txt")
    assert materialize([documents, document_chunks], resources=resources).success
    assert keys() == {prefix + k for k in bodies if k != "' OR '1'='1.txt"}
